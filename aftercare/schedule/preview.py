"""What a patient receives and when, in their own time zone and words: for `schedule preview` (nothing stored) and
the human form of `schedule list`."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from aftercare.contact import check_timezone
from aftercare.errors import InputError
from aftercare.models import Channel, Clinic, Enrollment, Escalation, ScheduledMessage, utcnow
from aftercare.protocols import render, render_email
from aftercare.schedule.enrollment import EnrollmentRequest, check_language, check_treatment, plan_messages

# Stand-ins for a preview without a clinic: the text shows where the clinic's own name and number go.
_SAMPLE = {"first_name": "Ayu", "clinic_name": "Your Clinic", "clinic_phone": "+6281234567890"}


def preview(*, treatment: str, treated_at: datetime, timezone: str | None = None, language: str = "en",
            clinic: Clinic | None = None, now: datetime | None = None) -> list[dict[str, Any]]:
    """The steps a patient treated at `treated_at` would get, computed exactly as `enroll` plans them (quiet hours
    of `clinic`, else 21:00-08:00) but written nowhere.

    Each row: step, channel, due_at (UTC ISO), local_time ("2026-11-25 20:00 +07:00" in `timezone`; default: the
    clinic's zone, else the offset `treated_at` was given in), status ("scheduled" or "skipped"), reason
    ("stale" for a step already past), text (as rendered for the patient). Raises InputError."""
    language, protocol = check_language(language), check_treatment(treatment)
    if treated_at.tzinfo is None:
        raise InputError("treatment time has no UTC offset")
    zone = timezone or (clinic.timezone if clinic else _zone_for_offset(treated_at))
    check_timezone(zone)
    clinic = clinic or Clinic(name=_SAMPLE["clinic_name"], phone=_SAMPLE["clinic_phone"], timezone=zone,
                              quiet_start="21:00", quiet_end="08:00")
    request = EnrollmentRequest(first_name=_SAMPLE["first_name"], phone=_SAMPLE["clinic_phone"],
                                email="patient@example.com", timezone=zone, language=language,
                                treatment=protocol.key, treated_at=treated_at)
    values = {**_SAMPLE, "clinic_name": clinic.name, "clinic_phone": clinic.phone}
    rows = plan_messages(protocol, clinic=clinic, request=request, now=now or utcnow())
    return [{"step": row["step"], "channel": row["channel"], "due_at": row["due_at"].isoformat(),
             # A skipped step never goes: its own planned time says more than "now".
             "local_time": local_time(row["planned_at"] if row["skip_reason"] else row["due_at"], zone),
             "status": row["status"], "reason": row["skip_reason"],
             "text": message_text(row["template"], row["channel"], language, values)}
            for row in rows]


def _zone_for_offset(moment: datetime) -> str:
    """A whole-hour offset as the IANA fixed zone (+07:00 -> Etc/GMT-7: POSIX signs are reversed); else UTC."""
    hours, rest = divmod(int(moment.utcoffset().total_seconds()), 3600)
    if rest or not -14 <= hours <= 12:
        return "UTC"
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"


def local_time(moment: datetime, zone: str) -> str:
    """'2026-11-25 20:00 +07:00': the wall time where the patient is, with its offset."""
    local = moment.astimezone(ZoneInfo(zone))
    offset = local.strftime("%z")
    return f"{local:%Y-%m-%d %H:%M} {offset[:3]}:{offset[3:]}"


def message_text(template: str, channel: str, language: str, values: dict[str, str]) -> str:
    """The text as the delivery renders it: an SMS, or an email as its subject, a blank line and its body."""
    if channel == Channel.EMAIL:
        subject, body = render_email(template, language, **values)
        return f"{subject}\n\n{body}"
    return render(template, language, **values)


def short_text(text: str, channel: str) -> str:
    """For a table: an SMS whole, an email by its subject (its body is pages long; --json has it all)."""
    if channel == Channel.EMAIL and text:
        return text.split("\n", 1)[0] + " (email; full text with --json)"
    return text


def describe_message(session: Session, row: ScheduledMessage) -> dict[str, str]:
    """{"local_time", "text"} for a stored message: a reminder in its patient's zone and language, a page (its
    stored text) in the clinic's zone."""
    if row.enrollment_id is not None:
        patient = session.get(Enrollment, row.enrollment_id).patient
        clinic = patient.clinic
        values = {"first_name": patient.first_name or "", "clinic_name": clinic.name, "clinic_phone": clinic.phone}
        text = row.body or (message_text(row.template, row.channel, patient.language, values) if row.template else "")
        return {"local_time": local_time(row.due_at, patient.timezone), "text": text}
    escalation = session.get(Escalation, row.escalation_id) if row.escalation_id else None
    zone = session.get(Clinic, escalation.clinic_id).timezone if escalation else "UTC"
    return {"local_time": local_time(row.due_at, zone), "text": row.body or ""}
