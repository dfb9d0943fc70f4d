"""The short text a clinician reads with a triage: why this level, in the words of the lexicon labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aftercare.triage.levels import TriageLevel

if TYPE_CHECKING:
    from aftercare.triage.lexicon import Lexicon
    from aftercare.triage.rules import Finding

_QUIET = {
    "question": "a question or message without warning signs",
    "positive": "no complaints",
    "denied": "signs named are absent or explained by something harmless",
    "empty": "empty reply",
    "unplaced": "no warning signs recognised; please read the message",
}


def explain_signs(level: TriageLevel, findings: Sequence[Finding], lexicon: Lexicon) -> str:
    """ "possible vascular occlusion: skin white, pale or grey; severe or throbbing pain (also: fever)".

    `findings` come most serious first, then in reading order.
    """
    groups: dict[str, list[str]] = {}
    others: list[str] = []
    for finding in findings:
        label = finding.sign.label
        if finding.level is not level:
            if label not in others:
                others.append(label)
            continue
        labels = groups.setdefault("passed" if finding.passed else finding.sign.group, [])
        if label not in labels:
            labels.append(label)
    text = " | ".join(f"{lexicon.groups[group]}: {'; '.join(labels)}" for group, labels in groups.items())
    return f"{text} (also: {'; '.join(others)})" if others else text


def explain_quiet(reason: str) -> str:
    return _QUIET[reason]
