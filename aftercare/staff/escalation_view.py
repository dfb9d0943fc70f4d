"""What the escalation page shows, as plain values for its template: only this escalation's patient(s).

Times are shown in the clinic's time zone with how long ago; the timeline holds the check-ins and reminders sent
on the escalation's treatments, the replies from its patient(s) and the automatic answers to them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from aftercare.escalation import RED_FLAG_SIGN, REVIEW_SIGN
from aftercare.escalation.paging import escalation_notes
from aftercare.escalation.replies import escalation_replies
from aftercare.models import (
    Clinic,
    Enrollment,
    Escalation,
    InboundMessage,
    MessageKind,
    MessageStatus,
    OnCallStaff,
    Patient,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import ProtocolError, render, render_email
from aftercare.views import candidates_view, escalation_who, treatments_view

try:  # photos come with issue 9's photo work; until that module exists the page simply shows none
    from aftercare.inbound.media import photo_urls
except ModuleNotFoundError as missing:  # pragma: no cover - depends on which branches are merged
    if missing.name != "aftercare.inbound.media":
        raise  # anything else broken inside it must not hide the photos silently
    photo_urls = None

TIMELINE_LIMIT = 60
_SENT = (MessageStatus.SENT, MessageStatus.DELIVERED)
_RED_FLAG_LABEL = "answered YES to the check-in's red-flag question"


def page_view(session: Session, escalation: Escalation, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the page shows about `escalation`, nothing about anyone else."""
    now = now or utcnow()
    clinic = session.get(Clinic, escalation.clinic_id)
    clock = _Clock(ZoneInfo(clinic.timezone), now)
    replies = escalation_replies(session, escalation)
    photos = photo_urls(session, [r.id for r in replies]) if photo_urls and replies else {}
    return {
        "id": escalation.id, "level": escalation.level, "status": escalation.status, "code": escalation.code,
        "who": escalation_who(session, escalation), "candidates": candidates_view(session, escalation.patient_ids),
        "phone": escalation.callback_phone, "clinic_name": clinic.name,
        "opened": clock.show(escalation.opened_at),
        "treatments": [{**t, "when": clock.show(datetime.fromisoformat(t["treated_at"]))}
                       for t in treatments_view(session, _enrollment_ids(escalation))],
        "checkin": _last_checkin(session, escalation, replies, clock),
        "replies": [{"body": r.body, "when": clock.show(r.received_at), "photos": photos.get(r.id, []),
                     "num_media": r.num_media} for r in replies],
        "signs": _sign_labels([s for s in escalation.signs if s != REVIEW_SIGN]),
        "explanation": escalation.explanation, "notes": escalation_notes(escalation),
        "pages": _pages(session, escalation, clock),
        "timeline": _timeline(session, escalation, clock),
        "acknowledged": _done(clock, escalation.acknowledged_at, escalation.acknowledged_by),
        "resolved": _done(clock, escalation.resolved_at, escalation.resolved_by),
        "resolution_note": escalation.resolution_note,
    }


class _Clock:
    """Shows a UTC time in the clinic's zone and how long before now: "Tue 25 Nov 19:04 (3 h 5 min ago)"."""

    def __init__(self, zone: ZoneInfo, now: datetime) -> None:
        self.zone, self.now = zone, now

    def show(self, at: datetime | None) -> str:
        if at is None:
            return ""
        return f"{at.astimezone(self.zone):%a %d %b %H:%M} ({ago(self.now - at)})"


def ago(delta: timedelta) -> str:
    """ "just now", "12 min ago", "3 h 5 min ago", "4 d 2 h ago" (a time in the future counts as now)."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 1:
        return "just now"
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h ago" if hours else f"{days} d ago"
    if hours:
        return f"{hours} h {mins} min ago" if mins else f"{hours} h ago"
    return f"{mins} min ago"


def _enrollment_ids(escalation: Escalation) -> list[int]:
    ids = set(escalation.enrollment_ids or [])
    return sorted(ids | {escalation.enrollment_id} if escalation.enrollment_id else ids)


def _patient_ids(escalation: Escalation) -> list[int]:
    return sorted(set(escalation.patient_ids or []) | ({escalation.patient_id} if escalation.patient_id else set()))


def _done(clock: _Clock, at: datetime | None, by: str | None) -> dict[str, str] | None:
    return {"when": clock.show(at), "by": by or ""} if at else None


def _sign_labels(signs: list[str]) -> list[str]:
    from aftercare.triage.lexicon import load_lexicon

    known = load_lexicon().signs
    return [_RED_FLAG_LABEL if s == RED_FLAG_SIGN else (known[s].label if s in known else s) for s in signs]


def _last_checkin(session: Session, escalation: Escalation, replies: list[InboundMessage],
                  clock: _Clock) -> dict[str, Any] | None:
    """The protocol step of the last check-in sent on these treatments before the first reply of the escalation,
    with its text as the patient got it: a one-word "YES" means what that question asked."""
    before = replies[0].received_at if replies else escalation.opened_at
    query = (select(ScheduledMessage, Enrollment).join(Enrollment, ScheduledMessage.enrollment_id == Enrollment.id)
             .where(ScheduledMessage.enrollment_id.in_(_enrollment_ids(escalation)),
                    ScheduledMessage.is_checkin.is_(True), ScheduledMessage.status.in_(_SENT),
                    ScheduledMessage.sent_at <= before)
             .order_by(ScheduledMessage.sent_at.desc()).limit(1))
    found = session.execute(query).first()
    if found is None:
        return None
    row, enrollment = found
    return {"step": row.step, "treatment": enrollment.treatment, "when": clock.show(row.sent_at),
            "red_flag": row.red_flag, "text": _sent_text(row, enrollment.patient)}


def _sent_text(row: ScheduledMessage, patient: Patient) -> str | None:
    """The text of a reminder as the patient got it (rendered again from its template when not stored)."""
    if row.body:
        return row.body
    if not row.template:
        return None
    clinic = patient.clinic
    values = {"first_name": patient.first_name, "clinic_name": clinic.name, "clinic_phone": clinic.phone}
    try:
        if row.channel == "email":
            return render_email(row.template, patient.language, **values)[1]
        return render(row.template, patient.language, **values)
    except ProtocolError:  # a template since removed: the step name still says what it was
        return None


def _pages(session: Session, escalation: Escalation, clock: _Clock) -> list[dict[str, Any]]:
    """Who was paged when, by which channel, and what became of it."""
    query = (select(ScheduledMessage, OnCallStaff.name).outerjoin(OnCallStaff, ScheduledMessage.staff_id == OnCallStaff.id)
             .where(ScheduledMessage.escalation_id == escalation.id, ScheduledMessage.kind == MessageKind.PAGE)
             .order_by(ScheduledMessage.due_at, ScheduledMessage.id))
    return [{"who": name or "clinic phone", "channel": row.channel, "status": row.status,
             "when": clock.show(row.sent_at or row.failed_at or row.cancelled_at or row.due_at)}
            for row, name in session.execute(query)]


def _timeline(session: Session, escalation: Escalation, clock: _Clock) -> list[dict[str, Any]]:
    """Messages to and from this escalation's patient(s), oldest first (the latest TIMELINE_LIMIT)."""
    items: list[tuple[datetime, dict[str, Any]]] = []
    sent = (select(ScheduledMessage, Enrollment).join(Enrollment, ScheduledMessage.enrollment_id == Enrollment.id)
            .where(ScheduledMessage.enrollment_id.in_(_enrollment_ids(escalation)),
                   ScheduledMessage.kind == MessageKind.REMINDER, ScheduledMessage.sent_at.is_not(None)))
    for row, enrollment in session.execute(sent):
        items.append((row.sent_at, {"direction": "out", "what": f"{enrollment.treatment}: {row.step}",
                                    "channel": row.channel, "status": row.status,
                                    "text": _sent_text(row, enrollment.patient)}))
    mine = [InboundMessage.escalation_id == escalation.id]
    if _patient_ids(escalation):
        mine.append(InboundMessage.patient_id.in_(_patient_ids(escalation)))
    for reply in session.scalars(select(InboundMessage).where(or_(*mine))):
        items.append((reply.received_at, {"direction": "in", "what": "reply", "channel": "sms",
                                          "status": reply.level or reply.handling or "", "text": reply.body}))
        if reply.answer:
            items.append((reply.received_at + timedelta(microseconds=1),
                          {"direction": "out", "what": "automatic answer", "channel": "sms", "status": "",
                           "text": reply.answer}))
    items.sort(key=lambda item: item[0])
    return [{**item, "when": clock.show(at)} for at, item in items[-TIMELINE_LIMIT:]]
