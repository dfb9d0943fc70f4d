"""`aftercare staff ...`: web accounts for clinic staff (the review inbox).

The password is typed at a hidden prompt (asked twice), or read from the first line of stdin with
--password-stdin for scripts; it is never a command-line argument (it would be in the shell history and `ps`).
"""

from __future__ import annotations

import sys

import click

from aftercare.output import emit

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
password_stdin_option = click.option("--password-stdin", is_flag=True,
                                     help="Read the password from the first line of stdin (for scripts).")
_COLUMNS = ["id", "email", "name", "active", "has_password", "last_sign_in_at"]


def _session_scope():
    from aftercare.db import session_scope

    return session_scope()


def _read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line (without its line ending), or a hidden prompt with confirmation.
    Checked (length) before it is used: a one-line error otherwise."""
    from aftercare.staff.accounts import check_password

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return check_password(password)


@click.group()
def staff() -> None:
    """Staff accounts for the web inbox."""


@staff.command("add")
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--email", required=True, help="Signs in with it (stored lower-case)")
@click.option("--name", required=True, help="Shown in the audit log for what they do")
@password_stdin_option
@json_option
def staff_add(clinic_slug: str, email: str, name: str, password_stdin: bool, as_json: bool) -> None:
    """Create a staff account for one clinic (audited)."""
    from aftercare.staff.accounts import add_staff, normalize_staff_email, staff_account_view

    # Check what can be checked before asking for a password (no point typing it twice for a bad email).
    normalize_staff_email(email)
    password = _read_password(password_stdin)
    with _session_scope() as session:
        data = staff_account_view(add_staff(session, clinic_slug=clinic_slug, email=email, name=name,
                                            password=password))
    emit(data, as_json=as_json, title="staff account added")


@staff.command("list")
@click.option("--clinic", "clinic_slug", required=True)
@json_option
def staff_list(clinic_slug: str, as_json: bool) -> None:
    """A clinic's staff accounts (active and deactivated)."""
    from aftercare.staff.accounts import list_staff, staff_account_view

    with _session_scope() as session:
        rows = [staff_account_view(s) for s in list_staff(session, clinic_slug=clinic_slug)]
    emit(rows, as_json=as_json, columns=_COLUMNS, title="staff accounts")


@staff.command("deactivate")
@click.argument("email")
@json_option
def staff_deactivate(email: str, as_json: bool) -> None:
    """Stop an account signing in; its open sessions end at their next request (audited)."""
    from aftercare.staff.accounts import deactivate, staff_account_view

    with _session_scope() as session:
        data = staff_account_view(deactivate(session, email))
    emit(data, as_json=as_json, title="staff account deactivated")


@staff.command("password")
@click.argument("email")
@password_stdin_option
@json_option
def staff_password(email: str, password_stdin: bool, as_json: bool) -> None:
    """Set a new password; the account's other sessions end (audited)."""
    from aftercare.staff.accounts import get_staff_by_email, set_password, staff_account_view

    with _session_scope() as session:
        get_staff_by_email(session, email)  # an unknown email fails before the password is asked for
    password = _read_password(password_stdin)
    with _session_scope() as session:
        data = staff_account_view(set_password(session, email, password))
    emit(data, as_json=as_json, title="password set")
