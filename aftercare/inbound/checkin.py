"""The check-in a reply answers: the last check-in sent to the patient, and the red-flag question it asked.

A one-word "yes" means something only next to the question it answers, and only for a while: the protocol sets
each red-flag question's answer window (issue 7, part 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, Row, Select, select
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, MessageKind, MessageStatus, ScheduledMessage
from aftercare.protocols import ProtocolError, load_protocol
from aftercare.protocols.loader import OCCLUSION_SCREENING

# Used when the step has left the protocol since the message went out (a newer protocol version).
_DEFAULT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class RedFlagQuestion:
    level: str  # the escalation level a YES opens: "emergency" or "urgent"
    open: bool  # still inside its answer window


def last_checkin_query(patient_ids: list[int] | list[BindParameter] | BindParameter) -> Select:
    """The last SMS check-in sent to these patients (the people on one phone: the phone got the question, whoever
    answers): one row of (step, red_flag, sent_at, treatment), or none. `patient_ids` may be an expanding
    bindparam, for a statement built once."""
    return (select(ScheduledMessage.step, ScheduledMessage.red_flag, ScheduledMessage.sent_at, Enrollment.treatment)
            .join(Enrollment, ScheduledMessage.enrollment_id == Enrollment.id)
            .where(Enrollment.patient_id.in_(patient_ids), ScheduledMessage.kind == MessageKind.REMINDER,
                   ScheduledMessage.is_checkin.is_(True), ScheduledMessage.channel == "sms",
                   ScheduledMessage.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]))
            .order_by(ScheduledMessage.sent_at.desc()).limit(1))


def red_flag_question(last: Row | None, now: datetime) -> RedFlagQuestion | None:
    """The red-flag question a row of `last_checkin_query` asked, or None when it asked none."""
    if last is None or last.red_flag is None or last.sent_at is None:
        return None
    return RedFlagQuestion(last.red_flag, now - last.sent_at <= _answer_window(last.treatment, last.step))


def last_red_flag_question(session: Session, *, patient_ids: list[int], now: datetime) -> RedFlagQuestion | None:
    """The red-flag question of the last check-in sent to these patients, or None when it asked none."""
    return red_flag_question(session.execute(last_checkin_query(patient_ids)).first(), now)


def _answer_window(treatment: str, step_id: str) -> timedelta:
    try:
        red_flag = load_protocol(treatment).step(step_id).red_flag
    except ProtocolError:
        return _DEFAULT_WINDOW
    return red_flag.answer_window if red_flag else _DEFAULT_WINDOW


def triage_context(enrollment: Enrollment | None, now: datetime) -> dict[str, object]:
    """What the enrollment tells triage that the reply may not: the treatment and the days since it."""
    if enrollment is None:
        return {}
    return {"treatment": enrollment.treatment, "days_since": (now - enrollment.treated_at).total_seconds() / 86400}


def in_occlusion_window(enrollment: Enrollment | None, red_flag: RedFlagQuestion | None, now: datetime) -> bool:
    """Whether a vascular occlusion is still likely enough that a reply nobody can place must be read in minutes:
    an emergency red-flag question is open, or the treatment's occlusion-screening window (72 h after filler or
    skin booster, CLINICAL-NOTES.md) has not passed."""
    if red_flag is not None and red_flag.open and red_flag.level == "emergency":
        return True
    window = OCCLUSION_SCREENING.get(enrollment.treatment) if enrollment is not None else None
    return window is not None and now - enrollment.treated_at <= window
