"""The setting a reply speaks from: which treatments it names and which day after treatment it speaks of.

The reply's own words win ("3 weeks after", "abis IPL"); the enrollment (treatment key, days since) fills
only what the reply leaves out. A treatment named only to deny it ("no filler", "bukan filler") does not count.
"""

from __future__ import annotations

from dataclasses import dataclass

from aftercare.triage.lexicon import Lexicon
from aftercare.triage.mentions import Found
from aftercare.triage.text import Tokens
from aftercare.triage.timeline import estimate_day


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What the clinic knows about the patient: a treatment key (e.g. "dermal-filler") and days since it."""

    treatment: str | None = None
    days_since: float | None = None


NO_ENROLLMENT = Enrollment()


def setting(tokens: Tokens, found: Found, lexicon: Lexicon, enrollment: Enrollment) -> tuple[set[str], int | None]:
    """(context names, day after treatment or None). Only signs with rules ask, so most replies never work it out."""
    contexts = {match.entry.key for match in found["context"] if not _denied(tokens, match.start, lexicon)}
    for name, words in lexicon.context_words.items():
        if not words.isdisjoint(tokens.present):
            contexts.update(name for index, word in enumerate(tokens.words)
                            if word in words and not _denied(tokens, index, lexicon))
    if enrollment.treatment and contexts.isdisjoint(lexicon.treatment_contexts):
        contexts.update(lexicon.treatments.get(enrollment.treatment, ()))
    day = estimate_day(found["timeframe"], tokens, lexicon.numbers, lexicon.words.appointment)
    if day is None and enrollment.days_since is not None and enrollment.days_since >= 0:
        day = int(enrollment.days_since)
    return contexts, day


def _denied(tokens: Tokens, index: int, lexicon: Lexicon) -> bool:
    """ "no filler", "not the laser", "bukan filler": the word before (or the one before it) denies it."""
    words, denials = tokens.words, lexicon.words.context_denial
    return (index > 0 and words[index - 1] in denials) or (index > 1 and words[index - 2] in denials
                                                            and words[index - 1] in lexicon.words.list_link)
