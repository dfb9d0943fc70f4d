"""The `aftercare` command line: parse, call one service function, print. No business rules here."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, ProgrammingError

from aftercare.config import ConfigError
from aftercare.errors import AftercareError
from aftercare.output import emit, print_json


class AftercareGroup(click.Group):
    """Domain and configuration errors become one line on stderr and exit code 1 (no traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (AftercareError, ConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except UnicodeEncodeError:
            click.echo("error: the input is not valid UTF-8", err=True)
            sys.exit(1)
        except (OperationalError, ProgrammingError) as exc:
            problem = _database_problem(exc)
            if problem is None:
                raise
            click.echo(f"error: {problem}", err=True)
            sys.exit(1)
        except (NoSuchModuleError, ArgumentError):
            click.echo("error: AFTERCARE_DATABASE_URL is not a database URL this version can use "
                       "(postgresql://... or sqlite:///...)", err=True)
            sys.exit(1)
        except (NotADirectoryError, PermissionError, FileExistsError) as exc:
            # The data folder (AFTERCARE_HOME) cannot be made or written: say which setting, not a traceback.
            click.echo(f"error: cannot use the data folder {exc.filename} (AFTERCARE_HOME): {exc.strerror}", err=True)
            sys.exit(1)


def _database_problem(exc: OperationalError | ProgrammingError) -> str | None:
    """One line for a database that has no schema yet or cannot be reached; None for anything else (a real bug
    keeps its traceback). The URL is shown without its password."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    reason = text.splitlines()[0] if text else ""
    kind = type(orig).__name__
    if kind == "UndefinedTable" or reason.startswith("no such table"):
        return "database not initialised: run aftercare db upgrade"
    if kind == "UndefinedColumn" or reason.startswith("no such column"):
        return "database schema is out of date: run aftercare db upgrade"
    if isinstance(exc, OperationalError) and (exc.statement is None or exc.connection_invalidated):
        from sqlalchemy.engine import make_url

        from aftercare.config import get_settings

        url = make_url(get_settings().effective_database_url)
        if url.password:
            reason = reason.replace(str(url.password), "***")
        shown = url.render_as_string(hide_password=True)
        return f"cannot reach the database {shown} (AFTERCARE_DATABASE_URL): {reason}"
    return None


def session_scope():
    from aftercare.db import session_scope as scope

    return scope()


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=AftercareGroup)
@click.version_option(package_name="aftercare", prog_name="aftercare", message="%(prog)s %(version)s")
def main() -> None:
    """Aftercare: post-treatment aftercare reminders and safety triage for aesthetic clinics."""


# --- database -------------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@json_option
def db_upgrade(revision: str, as_json: bool) -> None:
    """Apply the migrations (SQLite or PostgreSQL, from AFTERCARE_DATABASE_URL)."""
    from aftercare.config import get_settings
    from aftercare.db import get_engine
    from aftercare.migrate import current_revision, upgrade

    engine = get_engine()  # creates the embedded database folder when needed
    before = current_revision(engine)
    upgrade(get_settings().effective_database_url, revision)
    after = current_revision(engine)
    if as_json:
        print_json({"revision": after, "upgraded": after != before})
    else:
        click.echo(f"database at {revision} ({after})" if after != before else f"database already at {after}")


# --- clinics and on-call ----------------------------------------------------------------------------------
@main.group()
def clinic() -> None:
    """Clinics."""


@clinic.command("add")
@click.option("--name", required=True)
@click.option("--slug", required=True)
@click.option("--timezone", required=True, help="IANA name, e.g. Asia/Jakarta")
@click.option("--phone", required=True, help="The number patients call (local numbers read in the zone's country)")
@click.option("--sms-from", help="SMS sender number (defaults to AFTERCARE_TWILIO_FROM)")
@click.option("--email-from", help="Email sender (defaults to AFTERCARE_EMAIL_FROM)")
@click.option("--quiet-hours", default="21:00-08:00", show_default=True, help="Local window; none: no quiet hours")
@click.option("--review-within", default="2h", show_default=True,
              help="How soon staff must read a reply that needs a person, in clinic hours (e.g. 90m, 2h)")
@json_option
def clinic_add(as_json: bool, **fields) -> None:
    """Create a clinic."""
    from aftercare.clinics import add_clinic, name_sms_warning, no_oncall_warning
    from aftercare.views import clinic_view

    with session_scope() as session:
        added = add_clinic(session, **fields)
        data, oncall_warning = clinic_view(added), no_oncall_warning(session, added)
    emit(data, as_json=as_json, title="clinic added")
    for warning in (name_sms_warning(data["name"]), oncall_warning):
        if warning:
            click.echo(f"warning: {warning}", err=True)


@clinic.command("update")
@click.argument("slug")
@click.option("--name")
@click.option("--phone", help="The number patients call")
@click.option("--sms-from", help='SMS sender number ("" for the default)')
@click.option("--email-from", help='Email sender ("" for the default)')
@click.option("--quiet-hours", help="e.g. 21:00-08:00")
@json_option
def clinic_update(slug: str, as_json: bool, **fields) -> None:
    """Change a clinic's name, numbers, senders or quiet hours (checked as at `clinic add`)."""
    from aftercare.clinics import name_sms_warning, update_clinic
    from aftercare.views import clinic_view

    with session_scope() as session:
        data = clinic_view(update_clinic(session, slug, **fields))
    emit(data, as_json=as_json, title="clinic updated")
    if fields.get("name") is not None and (warning := name_sms_warning(data["name"])):
        click.echo(f"warning: {warning}", err=True)


@clinic.command("list")
@json_option
def clinic_list(as_json: bool) -> None:
    """List clinics."""
    from aftercare.clinics import list_clinics
    from aftercare.views import clinic_view

    with session_scope() as session:
        rows = [clinic_view(c) for c in list_clinics(session)]
    emit(rows, as_json=as_json, columns=["id", "slug", "name", "timezone", "phone", "quiet_hours"], title="clinics")


@main.group()
def oncall() -> None:
    """A clinic's on-call list (paged in order)."""


@oncall.command("add")
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--name", required=True)
@click.option("--phone", required=True)
@click.option("--email")
@json_option
def oncall_add(as_json: bool, **fields) -> None:
    """Add a clinician to the end of the on-call list."""
    from aftercare.clinics import add_oncall
    from aftercare.views import staff_view

    with session_scope() as session:
        data = staff_view(add_oncall(session, **fields))
    emit(data, as_json=as_json, title="on-call added")


@oncall.command("list")
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--all", "include_inactive", is_flag=True, help="Also those deactivated (not paged).")
@json_option
def oncall_list(clinic_slug: str, include_inactive: bool, as_json: bool) -> None:
    """Show the on-call list in paging order."""
    from aftercare.clinics import get_clinic, oncall_list
    from aftercare.views import staff_view

    with session_scope() as session:
        rows = [staff_view(s) for s in oncall_list(session, get_clinic(session, clinic_slug).id,
                                                   include_inactive=include_inactive)]
    emit(rows, as_json=as_json, columns=["position", "id", "name", "phone", "email", "active"], title="on-call")


def _oncall_action(name: str, help_text: str, change):
    @oncall.command(name, help=help_text)
    @click.argument("staff_id", type=int)
    @json_option
    def command(staff_id: int, as_json: bool) -> None:
        from aftercare.views import staff_view

        with session_scope() as session:
            data = staff_view(change(session, staff_id))
        emit(data, as_json=as_json, title=f"on-call {staff_id} {name}d")

    return command


def _remove(session, staff_id):
    from aftercare.clinics import remove_oncall

    return remove_oncall(session, staff_id)


def _set_active(active: bool):
    def change(session, staff_id):
        from aftercare.clinics import set_oncall_active

        return set_oncall_active(session, staff_id, active)

    return change


_oncall_action("remove", "Delete an entry from the on-call list (never paged yet; else use deactivate).", _remove)
_oncall_action("deactivate", "Stop paging someone (kept on the list and in the record).", _set_active(False))
_oncall_action("activate", "Page someone again.", _set_active(True))


@oncall.command("move")
@click.argument("staff_id", type=int)
@click.option("--position", type=int, required=True, help="The new place as `oncall list` numbers it (0: first)")
@json_option
def oncall_move(staff_id: int, position: int, as_json: bool) -> None:
    """Change who is paged first: the others keep their order."""
    from aftercare.clinics import move_oncall
    from aftercare.views import staff_view

    with session_scope() as session:
        data = staff_view(move_oncall(session, staff_id, position))
    emit(data, as_json=as_json, title=f"on-call {staff_id} moved")


# --- enrollment and schedule ---------------------------------------------------------------------------
@main.command()
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--first-name", required=True)
@click.option("--phone", required=True)
@click.option("--email")
@click.option("--timezone", help="IANA name; default: the clinic's")
@click.option("--language", type=click.Choice(["en", "id"], case_sensitive=False), default=None,
              help="en or id; default: as on file (en for a new patient)")
@click.option("--treatment", required=True, help="See `aftercare protocols list`")
@click.option("--treated-at", required=True, help="When the session took place (not ahead of now): ISO 8601 "
                                                  "with offset, e.g. 2026-11-25T14:30:00+07:00")
@click.option("--sms-consent/--no-sms-consent", default=None,
              help="The patient's answer today; --sms-consent also lifts an earlier STOP. Default: as on file "
                   "(yes for a new patient)")
@click.option("--email-consent/--no-email-consent", default=None, help="As --sms-consent, for email")
@json_option
def enroll(as_json: bool, treated_at: str, **fields) -> None:
    """Enroll a patient after a session: writes the care protocol's whole schedule."""
    from aftercare.clinics import get_clinic, no_oncall_warning
    from aftercare.contact import parse_treated_at
    from aftercare.schedule.enrollment import enroll as enroll_patient

    when = parse_treated_at(treated_at)
    with session_scope() as session:
        data = enroll_patient(session, treated_at=when, **fields).to_dict()
        oncall_warning = no_oncall_warning(session, get_clinic(session, fields["clinic_slug"]))
    title = "enrolled" if data["created"] else "already enrolled" + (
        " (consent recorded)" if data["consent_changed"] else " (nothing changed)")
    if as_json:
        print_json(data)
    else:
        emit({k: v for k, v in data.items() if k != "skipped"}, as_json=False, title=title)
        if data["skipped"]:
            emit(data["skipped"], as_json=False, columns=["step", "reason"], title="skipped steps")
    if oncall_warning:
        click.echo(f"warning: {oncall_warning}", err=True)
    if data["differs"] and not as_json:
        click.echo(f"note: the patient is on file with a different {', '.join(data['differs'])}; kept as on file "
                   "(change it with `aftercare patient update`).", err=True)
    if data["sms"] != "allowed" and not as_json:
        why = "opted out (STOP)" if data["sms"] == "opted_out" else "gave no SMS consent"
        click.echo(f"note: no SMS will be sent: the patient {why}; --sms-consent records consent given again.",
                   err=True)


@main.group()
def schedule() -> None:
    """Scheduled messages."""


@schedule.command("list")
@click.option("--enrollment", "enrollment_id", type=int)
@click.option("--status", type=click.Choice(["scheduled", "claimed", "sent", "delivered", "failed", "cancelled",
                                             "skipped"]))
@click.option("--limit", type=click.IntRange(min=1), default=None)
@json_option
def schedule_list(enrollment_id: int | None, status: str | None, limit: int | None, as_json: bool) -> None:
    """List scheduled messages: local time where the patient is and the text they get (--json: due_at in UTC).
    safety: sent in quiet hours too; red_flag: the escalation level a one-word YES to the message opens (none: no
    red-flag question)."""
    from aftercare.schedule.preview import describe_message, short_text
    from aftercare.views import list_messages, message_view

    with session_scope() as session:
        messages = list_messages(session, enrollment_id=enrollment_id, status=status, limit=limit)
        rows = [{**message_view(m), "safety": m.is_safety, "red_flag": m.red_flag} for m in messages]
        if not as_json:  # for people: their local time, the words, one narrow flags column
            rows = [{**r, **describe_message(session, m), "flags": ", ".join(_message_flags(r))}
                    for r, m in zip(rows, messages, strict=True)]
            rows = [{**r, "text": short_text(r["text"], r["channel"])} for r in rows]
    emit(rows, as_json=as_json, columns=["id", "enrollment_id", "step", "channel", "local_time", "status", "reason",
                                         "flags", "text"], title="schedule")


@schedule.command("preview")
@click.option("--treatment", required=True, help="See `aftercare protocols list`")
@click.option("--treated-at", required=True, help="ISO 8601 with offset, e.g. 2026-11-25T14:30:00+07:00")
@click.option("--timezone", help="The patient's IANA zone; default: the clinic's, else the --treated-at offset")
@click.option("--language", type=click.Choice(["en", "id"], case_sensitive=False), default="en", show_default=True)
@click.option("--clinic", "clinic_slug", help="Use this clinic's name, phone, zone and quiet hours")
@json_option
def schedule_preview(treatment: str, treated_at: str, timezone: str | None, language: str, clinic_slug: str | None,
                     as_json: bool) -> None:
    """What a patient treated then would get, and when in their local time; nothing is stored."""
    from aftercare.contact import parse_treated_at
    from aftercare.schedule.preview import preview, short_text

    when = parse_treated_at(treated_at)
    if clinic_slug:
        from aftercare.clinics import get_clinic

        with session_scope() as session:
            clinic = get_clinic(session, clinic_slug)
            rows = preview(treatment=treatment, treated_at=when, timezone=timezone, language=language, clinic=clinic)
    else:
        rows = preview(treatment=treatment, treated_at=when, timezone=timezone, language=language)
    if not as_json:
        rows = [{**r, "text": short_text(r["text"], r["channel"])} for r in rows]
    emit(rows, as_json=as_json, columns=["step", "channel", "local_time", "status", "reason", "text"],
         title=f"{treatment} preview (nothing stored)")


def _message_flags(row: dict) -> list[str]:
    return (["safety"] if row["safety"] else []) + ([f"YES={row['red_flag']}"] if row["red_flag"] else [])


def _enrollment_action(name: str, help_text: str):
    @schedule.command(name, help=help_text)
    @click.argument("enrollment_id", type=int)
    @json_option
    def command(enrollment_id: int, as_json: bool) -> None:
        from aftercare.schedule import enrollment as service
        from aftercare.views import enrollment_view

        with session_scope() as session:
            data = enrollment_view(getattr(service, name)(session, enrollment_id))
        emit(data, as_json=as_json, title=f"enrollment {enrollment_id}")

    return command


_enrollment_action("pause", "Hold an enrollment's reminders until resumed.")
_enrollment_action("resume", "Resume a paused enrollment (stale reminders are skipped, fresh ones go out).")
_enrollment_action("cancel", "Cancel an enrollment: its remaining reminders are cancelled.")


@main.group()
def patient() -> None:
    """Patients."""


@patient.command("list")
@click.option("--clinic", "clinic_slug", help="Only this clinic's patients")
@click.option("--search", help="A first-name substring, or digits of the phone number")
@json_option
def patient_list(clinic_slug: str | None, search: str | None, as_json: bool) -> None:
    """Find patients by first name or phone digits."""
    from aftercare.patients import list_patients, patient_view

    with session_scope() as session:
        rows = [patient_view(p) for p in list_patients(session, clinic_slug=clinic_slug, search=search)]
    emit(rows, as_json=as_json, columns=["id", "clinic", "first_name", "phone", "email", "language", "sms",
                                         "forgotten_at"], title="patients")


@patient.command("show")
@click.argument("ref", metavar="ID|PHONE")
@json_option
def patient_show(ref: str, as_json: bool) -> None:
    """A patient's timeline: what was sent when, on which channel, with which outcome, and their replies. A value
    starting with + is a phone number: every patient on it is shown (a family phone carries several)."""
    from aftercare.patients import show

    with session_scope() as session:
        data = show(session, ref)
    if as_json:
        print_json(data)
        return
    for one in data.get("patients", [data]):
        emit(one["patient"], as_json=False, title=f"patient {one['patient']['id']}")
        emit(one["enrollments"], as_json=False, columns=["id", "treatment", "treated_at", "status"],
             title="enrollments")
        emit(one["timeline"], as_json=False, columns=["at", "direction", "step", "channel", "status", "reason",
                                                      "level"], title="timeline")


def _patient_id(value: str) -> int:
    from aftercare.errors import InputError, NotFound

    if not value.strip().isdigit():
        raise InputError("expected a patient id (a number)")
    number = int(value)
    if number > 2**31 - 1:
        raise NotFound(f"unknown patient {number}")
    return number


@patient.command("update")
@click.argument("patient_id", metavar="ID")
@click.option("--first-name")
@click.option("--phone")
@click.option("--email", help="An empty value removes the email")
@click.option("--language", help="en or id")
@click.option("--timezone", help="IANA name, e.g. Asia/Jakarta")
@json_option
def patient_update(patient_id: str, as_json: bool, **fields) -> None:
    """Correct a patient's details, checked as at enrollment (audited: which fields changed)."""
    from aftercare.patients import patient_view, update_patient

    with session_scope() as session:
        patient, changed = update_patient(session, _patient_id(patient_id), **fields)
        data = {**patient_view(patient), "changed": changed}
    emit(data, as_json=as_json, title=f"patient {data['id']} " + ("updated" if changed else "(nothing changed)"))


_ON_OFF = click.Choice(["on", "off"], case_sensitive=False)


@patient.command("consent")
@click.argument("patient_id", metavar="ID")
@click.option("--sms", type=_ON_OFF, help="on also lifts an SMS opt-out (STOP)")
@click.option("--email", type=_ON_OFF)
@click.option("--by", "by", required=True, help="Who recorded the patient's answer")
@json_option
def patient_consent(patient_id: str, sms: str | None, email: str | None, by: str, as_json: bool) -> None:
    """Record the patient's consent to SMS and email (audited); applies to every message not yet sent."""
    from aftercare.contact import check_name
    from aftercare.patients import patient_view, set_consent

    def flag(value: str | None) -> bool | None:
        return None if value is None else value.lower() == "on"

    with session_scope() as session:
        patient, changed = set_consent(session, _patient_id(patient_id), sms=flag(sms), email=flag(email),
                                       by=check_name(by, field="--by", max_length=200))
        data = {**patient_view(patient), "changed": changed}
    emit(data, as_json=as_json, title=f"patient {data['id']} consent " + ("recorded" if changed else "unchanged"))


@patient.command("forget")
@click.argument("patient_id", metavar="ID")
@click.option("--by", "by", required=True, help="Who carried out the erasure request")
@json_option
def patient_forget(patient_id: str, by: str, as_json: bool) -> None:
    """Erase a patient's personal data on request: name, phone, email, their words and photos; future messages
    cancelled; the audit log keeps what was done, without personal data."""
    from aftercare.contact import check_name
    from aftercare.patients import forget

    with session_scope() as session:
        data = forget(session, _patient_id(patient_id), by=check_name(by, field="--by", max_length=200))
    emit(data, as_json=as_json, title=f"patient {data['patient_id']} forgotten")


# --- delivery ---------------------------------------------------------------------------------------------
@main.command()
@click.option("--once", is_flag=True, required=True, help="One claim-and-deliver cycle in this process.")
@json_option
def dispatch(once: bool, as_json: bool) -> None:
    """Send what is due now, in this process (no broker needed)."""
    from aftercare.schedule.tick import dispatch_once

    result = dispatch_once()
    data = {"claimed": result["claimed"], "sent": result["sent"], "failed": result["failed"]}
    emit(data if as_json else result, as_json=as_json, title="dispatch")


@main.command()
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
def outbox(limit: int, as_json: bool) -> None:
    """What the console channel "sent" (local runs)."""
    from aftercare.channels.console import read_outbox
    from aftercare.config import get_settings

    rows = [{k: r.get(k) for k in ("to", "channel", "body", "sent_at")} for r in read_outbox(get_settings())]
    rows = rows[-limit:]
    if not as_json:  # a table shows the start of each email; --json has the whole text
        rows = [{**r, "body": _shorten(r["body"] or "", 200)} for r in rows]
    emit(rows, as_json=as_json, columns=["sent_at", "channel", "to", "body"], title="outbox")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- protocols --------------------------------------------------------------------------------------------
@main.group()
def protocols() -> None:
    """Care protocols (one YAML file per treatment)."""


@protocols.command("list")
@json_option
def protocols_list(as_json: bool) -> None:
    from aftercare.protocols import list_protocols

    rows = [{"key": p.key, "name": p.name, "version": p.version, "steps": len(p.steps),
             "last_step_day": _last_day(p)} for p in list_protocols()]
    emit(rows, as_json=as_json, columns=["key", "name", "version", "steps", "last_step_day"], title="protocols")


def _last_day(protocol) -> int:
    from datetime import UTC
    from zoneinfo import ZoneInfo

    from aftercare.schedule.planner import step_time

    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    return max((step_time(s, treated_at=start, tz=ZoneInfo("UTC")) - start).days for s in protocol.steps)


@protocols.command("show")
@click.argument("key")
@click.option("--language", type=click.Choice(["en", "id"], case_sensitive=False), default="en", show_default=True)
@json_option
def protocols_show(key: str, language: str, as_json: bool) -> None:
    from aftercare.errors import InputError
    from aftercare.protocols import ProtocolError, load_protocol, render

    try:
        protocol = load_protocol(key)
    except ProtocolError as exc:
        raise InputError(str(exc)) from None
    sample = {"first_name": "Ayu", "clinic_name": "Your Clinic", "clinic_phone": "+6281234567890"}
    rows = [{"step": s.id, "when": _describe_when(s.when), "channel": s.channel, "template": s.template,
             "fresh_for": str(s.fresh_for), "checkin": s.checkin, "safety": s.safety,
             "red_flag": s.red_flag.level if s.red_flag else None,
             "answer_window": str(s.red_flag.answer_window) if s.red_flag else None,
             "text": render(s.template, language, **sample)}
            for s in protocol.steps]
    if as_json:
        print_json({"key": protocol.key, "name": protocol.name, "version": protocol.version, "steps": rows})
    else:
        emit(rows, as_json=False, columns=["step", "when", "channel", "checkin", "safety", "red_flag", "text"],
             title=f"{protocol.name} (v{protocol.version})")


def _describe_when(when) -> str:
    if hasattr(when, "offset"):
        return f"{when.offset} after"
    return f"day {when.day} at {when.at.strftime('%H:%M')}"


@protocols.command("validate")
@click.argument("paths", metavar="PATH...", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@json_option
def protocols_validate(paths: tuple[str, ...], as_json: bool) -> None:
    """Check protocol files; every problem is reported (not only the first), naming the file, the step and the field."""
    from aftercare.protocols import load_protocol_file, protocol_file_errors

    files = []
    for path in paths:
        errors = protocol_file_errors(path)
        entry: dict = {"path": path, "valid": not errors, "errors": errors}
        if not errors:
            protocol = load_protocol_file(path)
            entry.update(key=protocol.key, version=protocol.version, steps=len(protocol.steps))
        files.append(entry)
    valid = all(f["valid"] for f in files)
    if as_json:
        print_json({"valid": valid, "files": files})
    else:
        for entry in files:
            if entry["valid"]:
                click.echo(f"{entry['path']}: valid ({entry['key']} v{entry['version']}, {entry['steps']} steps)")
            for error in entry["errors"]:
                click.echo(f"error: {error}", err=True)
    if not valid:
        sys.exit(1)


@main.command("import")
@click.argument("csv_path", metavar="CSV", type=click.Path(dir_okay=False))
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--dry-run", is_flag=True, help="Validate and count; write nothing but the reject file.")
@json_option
def import_patients(csv_path: str, clinic_slug: str, dry_run: bool, as_json: bool) -> None:
    """Import patient sessions from a CSV (columns: see README). Bad rows go to CSV.rejects.csv."""
    from pathlib import Path

    from aftercare.importer import import_csv

    show_progress = sys.stdout.isatty() and not as_json
    with session_scope() as session, _progress(show_progress) as progress:
        report = import_csv(session, Path(csv_path), clinic_slug=clinic_slug, dry_run=dry_run, progress=progress)
    data = report.to_dict()
    if as_json:
        print_json(data)
        return
    if report.reject_file:
        click.echo(f"rejected rows and reasons: {report.reject_file}")
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb}: {report.imported}  already present: {report.already_present}  rejected: {report.rejected}")


class _progress:
    """A rich progress bar on a terminal; nothing when piped or with --json."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        task = self.bar.add_task("importing rows", total=None)
        return lambda rows: self.bar.update(task, completed=rows)

    def __exit__(self, *exc_info) -> None:
        if self.enabled:
            self.bar.stop()


# --- replies, triage and escalations ----------------------------------------------------------------------
@main.command()
@click.argument("text", required=False)
@click.option("--lang", type=click.Choice(["en", "id"], case_sensitive=False), default="en", show_default=True)
@click.option("--jsonl", is_flag=True, help='Batch: read {"text", "lang"} lines on stdin, write one result per line.')
@click.option("--treatment", default=None, help="Enrollment treatment key (e.g. dermal-filler, mesotherapy)")
@click.option("--days", "days_since", type=click.FloatRange(min=0), default=None, help="Days since the treatment")
@json_option
def triage(text: str | None, lang: str, jsonl: bool, treatment: str | None, days_since: float | None,
           as_json: bool) -> None:
    """Triage a patient's reply: emergency, urgent, routine or ok, with the signs found."""
    from aftercare.triage import triage as run_triage

    if jsonl:
        _triage_lines(run_triage)
        return
    if text is None:
        raise click.UsageError("give TEXT, or --jsonl to read JSON lines from stdin")
    result = run_triage(text, lang, treatment=treatment, days_since=days_since)
    emit(result.to_dict(), as_json=as_json, title="triage")


def _triage_lines(run_triage) -> None:
    import json

    from aftercare.errors import InputError

    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            text, lang = item["text"], item.get("lang") or "en"
            if not isinstance(text, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise InputError(f"line {number}: expected a JSON object with a string field 'text'") from None
        result = run_triage(text, lang)
        sys.stdout.write(json.dumps({"level": result.level.value, "signs": list(result.signs)}) + "\n")


@main.command()
@click.option("--from", "from_number", required=True, help="The patient's (or clinician's) phone number")
@click.option("--to", "to_number", default=None, help="The clinic number the text was sent to")
@click.option("--media", "num_media", type=click.IntRange(0, 10), default=0, show_default=True,
              help="How many photos came with it (an MMS)")
@click.argument("text", default="")
@json_option
def reply(from_number: str, to_number: str | None, num_media: int, text: str, as_json: bool) -> None:
    """Feed a text through exactly the webhook's code path (local runs, support)."""
    import uuid

    from aftercare.contact import normalize_phone
    from aftercare.inbound.handling import handle_inbound_sms

    # Twilio only ever sends real numbers; a typo here would be stored as a sender nobody can call back.
    from_number = normalize_phone(from_number, field="--from")
    to_number = normalize_phone(to_number, field="--to") if to_number else None
    with session_scope() as session:
        outcome = handle_inbound_sms(session, sid=f"LOCAL{uuid.uuid4().hex}", from_number=from_number,
                                     to_number=to_number, body=text, num_media=num_media)
    emit(outcome.to_dict(), as_json=as_json, title="reply handled")


@main.group(invoke_without_command=True)
@click.option("--clinic", "clinic_slug", help="Only this clinic's items")
@click.option("--all", "include_done", is_flag=True, help="Include items already done")
@json_option
@click.pass_context
def inbox(ctx: click.Context, clinic_slug: str | None, include_done: bool, as_json: bool) -> None:
    """Replies a person must read (unplaced, questions, photos, unknown senders), most serious and newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from aftercare.clinics import get_clinic
    from aftercare.review.service import list_inbox
    from aftercare.review.views import review_view

    with session_scope() as session:
        clinic_id = get_clinic(session, clinic_slug).id if clinic_slug else None
        rows = [review_view(item) for item in list_inbox(session, clinic_id=clinic_id, include_done=include_done)]
    emit(rows, as_json=as_json, columns=["id", "clinic", "reason", "level", "first_name", "received_at", "body"],
         title="inbox")


@inbox.command("done")
@click.argument("item_id", type=int)
@click.option("--by", "by", required=True, help="Who read it")
@click.option("--note", default=None, help="What was done")
@json_option
def inbox_done(item_id: int, by: str, note: str | None, as_json: bool) -> None:
    """Mark a review item as read and dealt with (audited)."""
    from aftercare.contact import check_name
    from aftercare.review.service import get_review_item, mark_done
    from aftercare.review.views import review_view

    with session_scope() as session:
        item = mark_done(session, get_review_item(session, item_id), by=check_name(by, field="--by", max_length=200),
                         note=note)
        data = review_view(item)
    emit(data, as_json=as_json, title=f"review item {item_id} done")


@inbox.command("escalate")
@click.argument("item_id", type=int)
@click.option("--by", "by", required=True, help="Who read it")
@click.option("--level", type=click.Choice(["emergency", "urgent"]), required=True,
              help="emergency: re-paged every few minutes; urgent: every half hour")
@json_option
def inbox_escalate(item_id: int, by: str, level: str, as_json: bool) -> None:
    """Open an escalation from a review item: pages the on-call clinician at once (audited)."""
    from aftercare.contact import check_name
    from aftercare.escalation.views import escalation_view
    from aftercare.review.service import escalate_review_item, get_review_item

    with session_scope() as session:
        escalation = escalate_review_item(session, get_review_item(session, item_id), level=level,
                                          by=check_name(by, field="--by", max_length=200))
        data = escalation_view(escalation)
    emit(data, as_json=as_json, title=f"review item {item_id} escalated")


@main.group()
def escalations() -> None:
    """Escalations raised by dangerous replies."""


@escalations.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only escalations nobody has acknowledged yet.")
@click.option("--all", "include_resolved", is_flag=True, help="Resolved ones too.")
@click.option("--clinic", "clinic_slug", help="Only this clinic's.")
@json_option
def escalations_list(open_only: bool, include_resolved: bool, clinic_slug: str | None, as_json: bool) -> None:
    """Every unresolved escalation (open and acknowledged), newest first."""
    from aftercare.clinics import get_clinic, list_clinics
    from aftercare.escalation.service import list_escalations
    from aftercare.escalation.views import escalation_view

    with session_scope() as session:
        clinic_id = get_clinic(session, clinic_slug).id if clinic_slug else None
        slugs = {c.id: c.slug for c in list_clinics(session)}
        rows = [{**escalation_view(e), "clinic": slugs[e.clinic_id]}
                for e in list_escalations(session, open_only=open_only, include_resolved=include_resolved,
                                          clinic_id=clinic_id)]
    columns = ["id", "code", "level", "status", "patient_id", "first_name", "opened_at", "acknowledged_at", "signs"]
    if not clinic_slug:  # several clinics' escalations side by side: say whose each is
        columns.insert(1, "clinic")
    emit(rows, as_json=as_json, columns=columns, title="escalations")


escalation_ref = click.argument("escalation_ref", metavar="ID|CODE")


@escalations.command("show")
@escalation_ref
@json_option
def escalations_show(escalation_ref: str, as_json: bool) -> None:
    """One escalation: the patient's words, the pages sent and the audit log. ID or the code from the page."""
    from aftercare.escalation.service import find_escalation
    from aftercare.escalation.views import escalation_detail

    with session_scope() as session:
        escalation_id = find_escalation(session, escalation_ref).id
        data = escalation_detail(session, escalation_id)
    if as_json:
        print_json(data)
        return
    emit({k: v for k, v in data.items() if k not in ("audit", "pages", "replies")}, as_json=False,
         title=f"escalation {escalation_id}")
    emit(data["replies"], as_json=False, columns=["at", "level", "body"], title="the patient's words")
    emit(data["pages"], as_json=False, columns=["due_at", "channel", "status", "staff_id", "sent_at"], title="pages")
    emit(data["audit"], as_json=False, columns=["at", "actor", "action", "details"], title="audit log")


@escalations.command("ack")
@escalation_ref
@click.option("--by", "by", required=True, help="Who is taking it")
@json_option
def escalations_ack(escalation_ref: str, by: str, as_json: bool) -> None:
    """Take an escalation (stops the repaging). ID or the code from the page SMS, e.g. K7Q2PM."""
    from aftercare.contact import check_name
    from aftercare.escalation.service import acknowledge, find_escalation
    from aftercare.escalation.views import escalation_view

    with session_scope() as session:
        escalation = find_escalation(session, escalation_ref)
        data = escalation_view(acknowledge(session, escalation, by=check_name(by, field="--by", max_length=200)))
    emit(data, as_json=as_json, title=f"escalation {data['id']} acknowledged")


@escalations.command("resolve")
@escalation_ref
@click.option("--by", "by", required=True)
@click.option("--note", required=True)
@json_option
def escalations_resolve(escalation_ref: str, by: str, note: str, as_json: bool) -> None:
    """Close an escalation with a note. ID or the code from the page SMS."""
    from aftercare.contact import check_name
    from aftercare.escalation.service import find_escalation, resolve
    from aftercare.escalation.views import escalation_view

    with session_scope() as session:
        escalation = find_escalation(session, escalation_ref)
        data = escalation_view(resolve(session, escalation, by=check_name(by, field="--by", max_length=200),
                                       note=check_name(note, field="--note", max_length=4000)))
    emit(data, as_json=as_json, title=f"escalation {data['id']} resolved")


@main.command()
@click.option("--host", default=None, help="Default: AFTERCARE_WEB_HOST")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Default: AFTERCARE_WEB_PORT")
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True, help="Per process.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Serve with gunicorn and this many worker processes (production: about one per core). "
                   "Default: waitress in this one process.")
def web(host: str | None, port: int | None, threads: int, workers: int | None) -> None:
    """Serve the Twilio webhooks, /healthz and the staff pages (waitress, or gunicorn with --workers)."""
    from aftercare.config import get_settings
    from aftercare.inbound.server import serve

    settings = get_settings()
    serve(host=host or settings.web_host, port=port or settings.web_port, threads=threads, workers=workers)


# --- running ----------------------------------------------------------------------------------------------
@main.command()
@click.option("--demo/--no-demo", default=False, help="Create a demo clinic and patient so reminders flow at once.")
def run(demo: bool) -> None:
    """Web, worker and beat together on embedded defaults (SQLite, filesystem broker, console channel)."""
    from aftercare.embedded import run_embedded

    run_embedded(demo=demo)


# --- the web side's accounts and keys (issue 9): their commands live beside the code they drive --------------
def _register_web_commands() -> None:
    from aftercare.api.commands import apikey
    from aftercare.commands.reports import export, stats
    from aftercare.staff.commands import staff

    main.add_command(stats)
    main.add_command(export)

    main.add_command(staff)
    main.add_command(apikey)


_register_web_commands()


if __name__ == "__main__":
    main()

