"""What escalation listings show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from aftercare.audit import entries_for
from aftercare.escalation.replies import escalation_replies
from aftercare.escalation.service import get_escalation
from aftercare.inbound.media import photo_urls
from aftercare.models import Escalation, MessageKind, ScheduledMessage
from aftercare.views import candidates_view, escalation_who, iso, message_view, treatments_view


def escalation_view(escalation: Escalation) -> dict[str, Any]:
    """`candidates`: the patients sharing the sender's phone, when several; `treatments`: every treatment named."""
    session = object_session(escalation)
    return {"id": escalation.id, "level": escalation.level, "status": escalation.status,
            "patient_id": escalation.patient_id, "first_name": escalation_who(session, escalation),
            "candidates": candidates_view(session, escalation.patient_ids), "treatments": treatments_view(session, escalation.enrollment_ids),
            "enrollment_id": escalation.enrollment_id, "code": escalation.code, "signs": escalation.signs,
            "opened_at": iso(escalation.opened_at), "acknowledged_at": iso(escalation.acknowledged_at),
            "acknowledged_by": escalation.acknowledged_by, "resolved_at": iso(escalation.resolved_at),
            "resolved_by": escalation.resolved_by, "page_round": escalation.page_round,
            "next_page_at": iso(escalation.next_page_at)}


def escalation_detail(session: Session, escalation_id: int) -> dict[str, Any]:
    escalation = get_escalation(session, escalation_id)
    pages = session.scalars(select(ScheduledMessage).where(ScheduledMessage.escalation_id == escalation_id,
                                                           ScheduledMessage.kind == MessageKind.PAGE)
                            .order_by(ScheduledMessage.id))
    replies = escalation_replies(session, escalation)
    photos = photo_urls(session, [r.id for r in replies])
    return {**escalation_view(escalation), "explanation": escalation.explanation,
            "resolution_note": escalation.resolution_note, "patient_phone": escalation.callback_phone,
            "replies": [{"id": r.id, "at": iso(r.received_at), "body": r.body, "level": r.level,
                         "photos": photos[r.id]} for r in replies],
            "pages": [{**message_view(p), "staff_id": p.staff_id} for p in pages],
            "audit": [{"at": iso(a.at), "actor": a.actor, "action": a.action, "details": a.details}
                      for a in entries_for(session, subject_type="escalation", subject_id=escalation_id)]}
