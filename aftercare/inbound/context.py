"""What a patient's reply is read against, in one round trip: the red-flag question of the last check-in, the
escalation still open for them, whether a robot already answered them since that check-in, and whether they were
told "a nurse will read your message" a moment ago.

Each is a subquery of one SELECT, built once per shape (building a statement costs more CPU than running it),
so a routine reply costs one read here instead of three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import ColumnElement, ScalarSelect, Select, bindparam, exists, literal, or_, select, true
from sqlalchemy.orm import Session

from aftercare.inbound.checkin import RedFlagQuestion, last_checkin_query, red_flag_question
from aftercare.inbound.identity import Recipient
from aftercare.models import (
    Enrollment,
    Escalation,
    EscalationStatus,
    InboundMessage,
    MessageStatus,
    ReviewItem,
    ScheduledMessage,
)
from aftercare.review.service import HOLDING_REPEAT, holding_answers


@dataclass(frozen=True)
class ReplyContext:
    red_flag: RedFlagQuestion | None
    open_escalation_id: int | None  # the open or acknowledged escalation this reply belongs to
    answered_since_checkin: bool  # the patient got an automatic routine/ok answer since their last check-in
    recently_held: bool  # the sender got a holding answer within HOLDING_REPEAT (review.service.recently_held)


def reply_context(session: Session, recipient: Recipient, sender: str, now: datetime) -> ReplyContext:
    """The context of a reply from `sender` for one clinic's `recipient` (one SELECT)."""
    patient = recipient.patient
    params = {"patient_ids": [p.id for p in recipient.candidates], "patient_id": patient.id if patient else None,
              "clinic_id": recipient.clinic.id, "sender": sender, "held_since": now - HOLDING_REPEAT}
    query = _context_query(attributed=patient is not None, shared=recipient.shared_phone)
    row = session.connection().execute(query, params).one()  # Core: the ORM's execute path adds nothing
    return ReplyContext(red_flag=red_flag_question(row, now), open_escalation_id=row.escalation_id,
                        answered_since_checkin=bool(row.answered), recently_held=bool(row.held))


@cache
def _context_query(*, attributed: bool, shared: bool) -> Select:
    """Parameters: patient_ids (everyone on the phone), patient_id (the one it is from, when `attributed`),
    clinic_id, sender, held_since. An expanding IN is rendered again at every run: only a shared phone has one."""
    everyone = bindparam("patient_ids", expanding=True) if shared else [bindparam("patient_id")]
    last = last_checkin_query(everyone).subquery()
    anchor = select(literal(1).label("one")).subquery()  # one row even when no check-in was ever sent
    answered = _answered_since_checkin() if attributed else literal(False)
    return (select(last.c.step, last.c.red_flag, last.c.sent_at, last.c.treatment,
                   _unresolved_escalation(attributed).label("escalation_id"), answered.label("answered"),
                   _recently_held().label("held"))
            .select_from(anchor.outerjoin(last, true())))


def _unresolved_escalation(attributed: bool) -> ScalarSelect:
    """The open or acknowledged escalation this reply belongs to: the patient's own, or one opened for the phone
    itself at this clinic (sender_phone: a shared phone's reply nobody could attribute). A family member who now
    says who is writing ("Putri here: ...") may be the one whose lip went white: the clinician sees the follow-up
    on that escalation, and no robot tells her all is normal."""
    for_the_phone = Escalation.sender_phone == bindparam("sender")
    about = ((Escalation.patient_id == bindparam("patient_id")) | for_the_phone if attributed else
             Escalation.patient_id.in_(bindparam("patient_ids", expanding=True)) | for_the_phone)
    return (select(Escalation.id).where(Escalation.clinic_id == bindparam("clinic_id"), about, Escalation.status.in_(
        [EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED])).order_by(Escalation.id.desc()).limit(1)
        .scalar_subquery())


def _recently_held() -> ColumnElement[bool]:
    """review.service.recently_held as a subquery: a holding answer went to this sender since held_since."""
    return holding_answers(bindparam("sender"), bindparam("held_since")).exists()


def _answered_since_checkin() -> ColumnElement[bool]:
    """At most one automatic routine/ok answer per check-in (the last sent to the patient, whichever treatment and
    channel), so a chatty patient is not answered by a robot. Holding answers to review items do not count."""
    last_checkin = (
        select(ScheduledMessage.sent_at).join(Enrollment, ScheduledMessage.enrollment_id == Enrollment.id).where(
            Enrollment.patient_id == bindparam("patient_id"), ScheduledMessage.is_checkin.is_(True),
            ScheduledMessage.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]))
        .order_by(ScheduledMessage.sent_at.desc()).limit(1).scalar_subquery())
    reviewed = select(ReviewItem.id).where(ReviewItem.inbound_id == InboundMessage.id).exists()
    return exists().where(InboundMessage.patient_id == bindparam("patient_id"), InboundMessage.handling == "reply",
                          InboundMessage.level.in_(["routine", "ok"]), InboundMessage.answer.is_not(None),
                          ~reviewed, or_(last_checkin.is_(None), InboundMessage.received_at >= last_checkin))
