"""The level each sign the patient has decides: its usual level, or the level a rule gives it for the
treatment and the day the reply speaks of (blisters after a laser are urgent, after filler an emergency;
bigger swelling on day 1 is expected, on day 4 urgent)."""

from __future__ import annotations

from typing import NamedTuple

from aftercare.triage.levels import TriageLevel
from aftercare.triage.lexicon import Lexicon, SignInfo
from aftercare.triage.mentions import Found, Mention
from aftercare.triage.setting import NO_ENROLLMENT, Enrollment, setting
from aftercare.triage.text import Tokens

PASSED_PREFIX = "passed_"
SIGN_CONTEXT = "sign:"


class Finding(NamedTuple):
    """A sign the patient has (or had, for a passed one), at the level it decides."""

    id: str
    sign: SignInfo
    level: TriageLevel
    position: int
    passed: bool = False


def findings(mentions: list[Mention], tokens: Tokens, found: Found, lexicon: Lexicon,
             enrollment: Enrollment = NO_ENROLLMENT) -> list[Finding]:
    result: list[Finding] = []
    where: tuple[set[str], int | None] | None = None
    for mention in mentions:
        sign, level = mention.sign, mention.sign.level
        if sign.rules:
            where = where or _with_signs(setting(tokens, found, lexicon, enrollment), mentions)
            level = level_of(sign, *where)
        if mention.present:
            result.append(Finding(sign.id, sign, level, mention.start))
        elif mention.passed and sign.passed_matters and level is TriageLevel.EMERGENCY:
            # An occlusion sign that came and went still needs a clinician's eyes today.
            result.append(Finding(PASSED_PREFIX + sign.id, sign, TriageLevel.URGENT, mention.start, passed=True))
    return result


def _with_signs(where: tuple[set[str], int | None], mentions: list[Mention]) -> tuple[set[str], int | None]:
    """A rule's context may be a sign the patient has now, as "sign:<id>" ("sign:fever": a throbbing swelling with a
    fever is an infection's); a denied fever or a child's fever is no such context."""
    contexts, day = where
    return contexts | {SIGN_CONTEXT + m.sign.id for m in mentions if m.present}, day


def level_of(sign: SignInfo, contexts: set[str], day: int | None) -> TriageLevel:
    """The sign's level after its rules: the first rule whose conditions all hold replaces the usual one."""
    for rule in sign.rules:
        if rule.context and rule.context not in contexts:
            continue
        if rule.without and rule.without in contexts:
            continue
        if rule.day_at_most is not None and (day is None or day > rule.day_at_most):
            continue
        if rule.day_at_least is not None and (day is None or day < rule.day_at_least):
            continue
        return rule.level
    return sign.level
