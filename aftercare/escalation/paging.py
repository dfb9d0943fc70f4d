"""Pages live in the database: an open escalation's `next_page_at` is swept by every dispatcher tick, so
nothing about safety depends on the broker keeping a task. Each round pages the next person on the list."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.clinics import oncall_list
from aftercare.config import get_settings
from aftercare.escalation import RED_FLAG_SIGN, REVIEW_SIGN
from aftercare.escalation.replies import danger_reply
from aftercare.models import (
    Channel,
    Clinic,
    Enrollment,
    Escalation,
    EscalationStatus,
    MessageKind,
    MessageStatus,
    OnCallStaff,
    ScheduledMessage,
    utcnow,
)
from aftercare.protocols import render, render_email
from aftercare.views import escalation_who


def queue_due_pages(session: Session, *, now: datetime | None = None) -> int:
    """Page again for every open escalation whose next page time has come. Returns how many escalations."""
    now = now or utcnow()
    query = (select(Escalation).where(Escalation.status == EscalationStatus.OPEN, Escalation.next_page_at <= now)
             .with_for_update(skip_locked=True, of=Escalation))
    due = list(session.scalars(query))
    for escalation in due:
        escalation.page_round += 1
        queue_pages(session, escalation, reply_text=None, now=now)
    return len(due)


def queue_pages(session: Session, escalation: Escalation, *, reply_text: str | None, now: datetime) -> None:
    """Write this round's page (SMS and email) to the outbox, due now, to the person whose turn the round is."""
    person = person_for_turn(session, escalation.clinic_id, escalation.page_round)
    _queue_round(session, escalation, person, reply_text=reply_text, now=now)


def _queue_round(session: Session, escalation: Escalation, person: OnCallStaff | None, *, reply_text: str | None,
                 now: datetime) -> None:
    """Page `person` (None: the clinic's own phone) for this round and set the next round's time."""
    from aftercare.escalation.service import repage_interval

    clinic = session.get(Clinic, escalation.clinic_id)
    values = _page_values(session, escalation, clinic, reply_text)
    # The time in the step keeps a second page in the same round (a new emergency sign) apart from the first.
    channels = write_page(
        session, clinic, person=person, template="page", values=values, now=now,
        step=f"page-{escalation.id}-{escalation.page_round}-{escalation.level}-{now:%Y%m%dT%H%M%S%f}",
        enrollment_id=escalation.enrollment_id, escalation_id=escalation.id)
    escalation.next_page_at = now + repage_interval(escalation.level, get_settings())
    audit.record(session, actor="dispatcher", action="escalation.page_queued", subject_type="escalation",
                 subject_id=escalation.id, round=escalation.page_round, staff_id=person.id if person else None,
                 channels=channels)


def person_for_turn(session: Session, clinic_id: int, turn: int) -> OnCallStaff | None:
    """Round-robin over the clinic's active on-call list in position order; None when nobody is on call."""
    staff = oncall_list(session, clinic_id)
    return staff[turn % len(staff)] if staff else None


def write_page(session: Session, clinic: Clinic, *, person: OnCallStaff | None, template: str, values: dict,
               now: datetime, step: str, **row: int | None) -> list[str]:
    """Write one page to the outbox, due now: SMS (and email when they have one) to `person`, or to the clinic's
    own phone when nobody is on call. `template` names the SMS text `<template>.sms` and the email
    `<template>.email`. Returns the channels written."""
    targets = [(Channel.SMS, person.phone if person else clinic.phone)]
    if person and person.email:
        targets.append((Channel.EMAIL, person.email))
    values = _with_link(values, row.get("escalation_id"), person)
    for channel, recipient in targets:
        session.add(ScheduledMessage(kind=MessageKind.PAGE, staff_id=person.id if person else None,
                                     recipient=recipient, step=step, channel=channel,
                                     body=_page_body(template, channel, values), planned_at=now, due_at=now,
                                     status=MessageStatus.SCHEDULED, **row))
    return [channel for channel, _ in targets]


def repage_after_failure(session: Session, failed: ScheduledMessage, *, now: datetime) -> None:
    """An escalation's page SMS failed for good (the clinician texted STOP, a wrong number, a carrier failure):
    email that person, and page the next on-call person at once, while the escalation is still open."""
    escalation = session.get(Escalation, failed.escalation_id)
    if escalation is None or escalation.status != EscalationStatus.OPEN:
        return
    clinic = session.get(Clinic, escalation.clinic_id)
    email_after_failure(session, failed, template="page", values=_page_values(session, escalation, clinic, None),
                        now=now)
    found, person = next_untried(session, clinic, failed, ScheduledMessage.escalation_id == escalation.id)
    if found:
        escalation.page_round += 1
        _queue_round(session, escalation, person, reply_text=None, now=now)


def email_after_failure(session: Session, failed: ScheduledMessage, *, template: str, values: dict,
                        now: datetime) -> None:
    """Email the person whose page SMS failed, unless the same page already emails that address."""
    person = session.get(OnCallStaff, failed.staff_id) if failed.staff_id else None
    if person is None or not person.email:
        return
    emailed = session.scalar(select(ScheduledMessage.id).where(
        ScheduledMessage.kind == MessageKind.PAGE, ScheduledMessage.step == failed.step,
        ScheduledMessage.channel == Channel.EMAIL, ScheduledMessage.recipient == person.email).limit(1))
    if emailed is not None:
        return
    values = _with_link(values, failed.escalation_id, person)
    # Its own step, named after the failed page's: a page's steps never meet a reminder's or another page's.
    session.add(ScheduledMessage(
        kind=MessageKind.PAGE, staff_id=person.id, recipient=person.email, step=f"{failed.step}-email"[:120],
        channel=Channel.EMAIL, body=_page_body(template, Channel.EMAIL, values), planned_at=now, due_at=now,
        status=MessageStatus.SCHEDULED, enrollment_id=failed.enrollment_id, escalation_id=failed.escalation_id,
        review_item_id=failed.review_item_id, fallback_of_id=failed.id))


def next_untried(session: Session, clinic: Clinic, failed: ScheduledMessage,
                 same_case: ColumnElement[bool]) -> tuple[bool, OnCallStaff | None]:
    """Who to page after `failed`: the next active on-call person in position order (wrapping round) whose page
    SMS about the same case (`same_case`) has not failed, else the clinic's own phone as the last resort.
    Returns (found, person); person None means the clinic's phone. Nobody is paged twice after a failure, so a
    list where every number fails ends instead of looping."""
    failed_rows = session.execute(select(ScheduledMessage.staff_id).where(
        same_case, ScheduledMessage.kind == MessageKind.PAGE, ScheduledMessage.channel == Channel.SMS,
        ScheduledMessage.status == MessageStatus.FAILED)).all()
    tried = {staff_id for (staff_id,) in failed_rows} | {failed.staff_id}
    staff = oncall_list(session, clinic.id)
    after = next((i + 1 for i, person in enumerate(staff) if person.id == failed.staff_id), 0)
    for person in staff[after:] + staff[:after]:
        if person.id not in tried:
            return True, person
    return (None not in tried), None


def _page_values(session: Session, escalation: Escalation, clinic: Clinic, reply_text: str | None) -> dict:
    if reply_text is None:
        reply = danger_reply(session, escalation)
        reply_text = reply.body if reply else ""
    reply = reply_text if len(reply_text) <= 300 else reply_text[:297] + "..."
    return {"level": escalation.level.upper(), "first_name": escalation_who(session, escalation),
            "treatment": _treatments(session, escalation), "reply": reply, "code": escalation.code,
            "clinic_name": clinic.name, "clinic_phone": clinic.phone, "patient_phone": escalation.callback_phone or "",
            "note": " ".join(_page_notes(session, escalation))}


def _treatments(session: Session, escalation: Escalation) -> str:
    """Every treatment the escalation names and how long ago, newest first: "skin-booster 2h ago, dermal-filler
    3h ago" (a patient treated twice that morning may be reporting on either)."""
    ids = set(escalation.enrollment_ids or []) | ({escalation.enrollment_id} if escalation.enrollment_id else set())
    if not ids:
        return "unknown"
    enrollments = session.scalars(select(Enrollment).where(Enrollment.id.in_(ids))
                                  .order_by(Enrollment.treated_at.desc()))
    return ", ".join(f"{e.treatment} {_ago(escalation.opened_at - e.treated_at)} ago" for e in enrollments)


def _ago(delta: timedelta) -> str:
    hours = max(0, int(delta.total_seconds() // 3600))
    return f"{hours}h" if hours < 48 else f"{hours // 24}d"


def _page_notes(session: Session, escalation: Escalation) -> list[str]:
    """The page's notes: the signs found, then what escalation_notes says."""
    signs = [sign.replace("_", " ") for sign in escalation.signs if sign not in _NOT_SIGNS]
    reply = danger_reply(session, escalation)
    photos = [f"{reply.num_media} photo(s) sent: see the link."] if reply is not None and reply.num_media else []
    return ([f"Signs: {', '.join(signs)}."] if signs else []) + photos + escalation_notes(escalation)


# Markers in Escalation.signs that are not clinical signs: each has its own note.
_NOT_SIGNS = frozenset({RED_FLAG_SIGN, REVIEW_SIGN})


def escalation_notes(escalation: Escalation) -> list[str]:
    """What the clinician must know besides the words (the page SMS and email, the escalation page): outside the
    quote, so nobody reads it as the patient's."""
    notes = []
    if REVIEW_SIGN in escalation.signs:
        said = escalation.explanation or "escalated from the inbox"
        notes.append(f"{said[:1].upper()}{said[1:]}.")
    if RED_FLAG_SIGN in escalation.signs:
        notes.append("They answered YES to the check-in's red-flag question.")
    if escalation.patient is None and escalation.patient_ids:
        notes.append("Shared phone, not sure who wrote: call this number back.")
    elif escalation.patient is None:
        notes.append("Sender not on file: call this number back.")
    elif not escalation.patient.sms_allowed:
        notes.append("Patient has opted out of SMS: reach them by phone.")
    return notes


def _with_link(values: dict, escalation_id: int | None, person: OnCallStaff | None) -> dict:
    """The page's values with the link to the escalation's page for the person paged (a page about an escalation
    only: a review page has no escalation page)."""
    if escalation_id is None:
        return values
    from aftercare.staff.links import escalation_link

    return {**values, "link": escalation_link(escalation_id, person.id if person else None)}


# How much of the patient's words a page SMS quotes when it carries a link: with the link, the page fits in about
# three segments; the email and the page behind the link have them all (up to 300 characters).
_SMS_QUOTE = 120


def _page_body(template: str, channel: str, values: dict) -> str:
    # Pages go to the clinic's staff, in English: the on-call list has no language of its own yet.
    if channel == Channel.EMAIL:
        subject, body = render_email(f"{template}.email", "en", **values)
        return f"{subject}\n\n{body}"
    phone, link = values.get("patient_phone"), values.get("link")
    if link and len(values.get("reply", "")) > _SMS_QUOTE:  # the link shows all their words; the SMS a start
        values = {**values, "reply": values["reply"][:_SMS_QUOTE - 3] + "..."}
    text = render(f"{template}.sms", "en", **values)
    text = text if not phone or phone in text else f"{text} Patient: {phone}"
    # The link comes last, after everything safety-critical, with nothing stuck to it for the phone to linkify.
    return f"{text} {link}" if link else text
