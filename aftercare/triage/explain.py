"""The short text a clinician reads with a triage: why this level, in the words of the lexicon labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aftercare.triage.levels import TriageLevel

if TYPE_CHECKING:
    from aftercare.triage.engine import Finding
    from aftercare.triage.lexicon import Lexicon

_QUIET = {
    "question": "a question or message without warning signs",
    "positive": "no complaints",
    "denied": "warning signs asked about are absent",
    "empty": "empty reply",
    "unplaced": "no warning signs recognised; please read the message",
}


def explain_signs(level: TriageLevel, findings: Sequence[Finding], lexicon: Lexicon) -> str:
    """ "possible vascular occlusion: skin white, pale or grey; severe or throbbing pain (also: fever)" """
    top = [f for f in findings if f.level is level]
    parts = []
    for group, labels in _labels_by_group(top).items():
        parts.append(f"{lexicon.groups[group]}: {'; '.join(labels)}")
    text = " | ".join(parts)
    others = [label for labels in _labels_by_group([f for f in findings if f.level is not level]).values()
              for label in labels]
    return f"{text} (also: {'; '.join(others)})" if others else text


def _labels_by_group(findings: Sequence[Finding]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for finding in sorted(findings, key=lambda f: f.position):
        group = "passed" if finding.passed else finding.sign.group
        labels = grouped.setdefault(group, [])
        if finding.sign.label not in labels:
            labels.append(finding.sign.label)
    return grouped


def explain_quiet(reason: str) -> str:
    return _QUIET[reason]
