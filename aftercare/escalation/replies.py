"""The patient's words an escalation is about.

A reply is linked to one escalation (`InboundMessage.escalation_id`), but one reply can open several: a number
the receiving number cannot place is escalated at every candidate clinic. The audit log records the reply that
opened or followed up each escalation, so every escalation finds its own words there too.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aftercare.models import AuditEntry, Escalation, InboundMessage
from aftercare.triage import TriageLevel

_RAISED_BY = ("escalation.opened", "escalation.followup")


def escalation_replies(session: Session, escalation: Escalation) -> list[InboundMessage]:
    """Every reply on `escalation`, oldest first: those linked to it and those that opened or followed it up."""
    entries = session.scalars(select(AuditEntry.details).where(
        AuditEntry.subject_type == "escalation", AuditEntry.subject_id == escalation.id,
        AuditEntry.action.in_(_RAISED_BY)))
    raised_by = {d.get("inbound_id") for d in entries if isinstance(d, dict) and d.get("inbound_id")}
    query = select(InboundMessage).where(or_(InboundMessage.escalation_id == escalation.id,
                                             InboundMessage.id.in_(raised_by)))
    return list(session.scalars(query.order_by(InboundMessage.id)))


def danger_reply(session: Session, escalation: Escalation) -> InboundMessage | None:
    """The reply a page must quote: the most serious on the escalation, the latest of those ("thanks" or a photo
    sent afterwards is not what the next clinician on call needs to read)."""
    replies = escalation_replies(session, escalation)
    return max(reversed(replies), key=_rank, default=None)


def _rank(reply: InboundMessage) -> int:
    try:
        return TriageLevel(reply.level).rank
    except ValueError:
        return -1
