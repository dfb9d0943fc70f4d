"""What to do with a patient's reply once it is triaged: escalate, put it before a person, answer, or stay quiet.

A pure function, so the safety rules are tested without a database (issue 7, part 3):
- a danger sign, or YES to a red-flag question, escalates; the more serious reading wins;
- an automatic "this is usually normal" goes only when the triage positively recognised routine signs and nothing
  else, and the clinic has written an answer for every one of them (`answerable`); a question, an unplaceable
  reply, a photo, a sign with no written answer (dizziness, numbness, "something feels wrong") or a YES-ish reply
  that also says all is fine goes to a person (a review item) and the patient gets a holding answer that
  reassures nothing;
- a patient with an open escalation is never answered by a robot: the clinician is already on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from aftercare.escalation import RED_FLAG_SIGN
from aftercare.inbound.answers import Answer, ReadAnswer
from aftercare.inbound.checkin import RedFlagQuestion
from aftercare.triage import TriageLevel, TriageResult

_ESCALATING = (TriageLevel.URGENT, TriageLevel.EMERGENCY)
# Quiet triage bases that positively say nothing is wrong (see TriageResult.basis).
_ALL_WELL = frozenset({"positive", "denied"})


class Action(StrEnum):
    ESCALATE = "escalate"
    REVIEW = "review"
    ANSWER = "answer"  # the automatic routine tip or thanks
    SILENT = "silent"


@dataclass(frozen=True)
class Disposition:
    action: Action
    level: TriageLevel
    signs: list[str] = field(default_factory=list)
    reason: str = ""  # REVIEW: unplaced, question, photo, unanswered_sign, unclear_answer; SILENT: why


def dispose(result: TriageResult, *, answerable: frozenset[str], answer: ReadAnswer | None = None,
            rest: TriageResult | None = None, red_flag: RedFlagQuestion | None = None, num_media: int = 0,
            open_escalation: bool = False, asks: bool = False) -> Disposition:
    """Decide from a triage, the signs the clinic has a written answer for, the yes/no answer the reply gives (if
    any) with the triage of what follows it (`rest`), the red-flag question of the last check-in (None when it
    asked none), and whether the reply asks something besides "is this normal?" (`asks`)."""
    signs = list(result.signs)
    asked = red_flag is not None and red_flag.open
    if asked and answer is not None and answer.answer is Answer.YES:
        return _yes_to_red_flag(result, rest, TriageLevel(red_flag.level), signs)
    if result.level in _ESCALATING:
        return Disposition(Action.ESCALATE, result.level, signs)
    if open_escalation:
        return Disposition(Action.SILENT, result.level, signs, reason="escalation_open")
    if num_media:
        return Disposition(Action.REVIEW, _at_least_routine(result.level), signs, reason="photo")
    if answer is not None and answer.whole:
        if asked and answer.answer is Answer.NO:
            return Disposition(Action.ANSWER, TriageLevel.OK, signs)
        # A bare yes or no with no open red-flag question: late, or to "pus or fever?" or "happy with it?".
        return Disposition(Action.REVIEW, TriageLevel.ROUTINE, signs, reason="unclear_answer")
    if asks:
        return Disposition(Action.REVIEW, _at_least_routine(result.level), signs, reason="question")
    return _quiet(result, signs, answerable)


def _yes_to_red_flag(result: TriageResult, rest: TriageResult | None, screened: TriageLevel,
                     signs: list[str]) -> Disposition:
    if result.level.rank > screened.rank:
        return Disposition(Action.ESCALATE, result.level, signs + [RED_FLAG_SIGN])
    if rest is not None and rest.level is TriageLevel.OK and rest.basis in _ALL_WELL:
        # "yes all good thanks": a yes to which question? Not an emergency on its face, but a person reads it.
        return Disposition(Action.REVIEW, TriageLevel.ROUTINE, signs, reason="unclear_answer")
    # "yes", "yes, a little", "yes unfortunately": a YES, whatever else the words are.
    return Disposition(Action.ESCALATE, screened, [RED_FLAG_SIGN, *signs])


def _quiet(result: TriageResult, signs: list[str], answerable: frozenset[str]) -> Disposition:
    if result.level is TriageLevel.ROUTINE and result.basis == "signs":
        if answerable.issuperset(signs):
            return Disposition(Action.ANSWER, result.level, signs)
        return Disposition(Action.REVIEW, result.level, signs, reason="unanswered_sign")
    if result.level is TriageLevel.OK and result.basis in _ALL_WELL:
        return Disposition(Action.ANSWER, result.level, signs)
    if result.level is TriageLevel.OK and result.basis == "empty":
        return Disposition(Action.SILENT, result.level, signs, reason="empty")
    reason = "question" if result.basis == "question" else "unplaced"
    return Disposition(Action.REVIEW, TriageLevel.ROUTINE, signs, reason=reason)


def _at_least_routine(level: TriageLevel) -> TriageLevel:
    """A reply waiting for a person is never filed as "ok": it sorts with the routine ones in the inbox."""
    return max(level, TriageLevel.ROUTINE, key=lambda lv: lv.rank)
