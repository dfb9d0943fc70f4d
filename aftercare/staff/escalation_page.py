"""The escalation page a page's link opens: what the clinician needs in the first minute, Acknowledge and Resolve.

GET /e/<token> shows one escalation (the one the token names, to the on-call person it was sent to); POST
/e/<token>/ack and /e/<token>/resolve act on it as that person (audited, via "web"). Every form carries a token
bound to the link, the action and the escalation's status when the page was drawn: a POST without it, from
another site, or replayed after the case changed is refused. Nothing here is cached by a browser or a proxy.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from flask import Response, flash, redirect, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare import audit
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.errors import AftercareError
from aftercare.escalation.service import acknowledge, resolve
from aftercare.models import Escalation, EscalationStatus, OnCallStaff
from aftercare.staff import blueprint
from aftercare.staff.auth import signed_in_account
from aftercare.staff.escalation_view import page_view
from aftercare.staff.links import EscalationLink, read_escalation_token
from aftercare.staff.signing import InvalidToken, sign, unsign

CSRF_PURPOSE = "csrf"
NOTE_MAX_CHARS = 4000
CLINIC_PHONE_ACTOR = "clinic phone"  # who acts on a link sent to the clinic's own phone (nobody was on call)
# Which status a form is drawn for, so it means "ack this open case", never "ack whatever it is by now".
ACTIONS = {"ack": (EscalationStatus.OPEN,), "resolve": (EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED)}


@blueprint.get("/e/<token>")
def escalation_page(token: str) -> Response:
    with session_scope() as session:
        found = _open_link(session, token)
        if found is None:
            return _forbidden()
        escalation, actor = found
        audit.record(session, actor=actor, action="escalation.viewed", subject_type="escalation",
                     subject_id=escalation.id, via="web")
        forms = {action: form_token(token, action, escalation.status)
                 for action, statuses in ACTIONS.items() if escalation.status in statuses}
        html = render_template("escalation.html", e=page_view(session, escalation), forms=forms, token=token,
                               actor=actor, note_max=NOTE_MAX_CHARS)
    return _private(Response(html))


@blueprint.post("/e/<token>/ack")
def escalation_ack(token: str) -> Response:
    return _act(token, "ack")


@blueprint.post("/e/<token>/resolve")
def escalation_resolve(token: str) -> Response:
    return _act(token, "resolve")


def form_token(link_token: str, action: str, status: str) -> str:
    """The hidden csrf_token of a form on the page of `link_token`: good for `action` while the escalation is
    still in `status`."""
    return sign(CSRF_PURPOSE, {"l": _digest(link_token), "a": action, "st": status})


def _act(token: str, action: str) -> Response:
    if _from_another_site():
        return _forbidden()
    with session_scope() as session:
        found = _open_link(session, token, lock=True)
        if found is None:
            return _forbidden()
        escalation, actor = found
        drawn_for = _form_status(token, action, request.form.get("csrf_token", ""))
        if drawn_for is None:
            return _forbidden()
        # Acknowledge only what was open when the page was drawn; Resolve also after a colleague acknowledged.
        if escalation.status not in ACTIONS[action] or drawn_for not in ACTIONS[action]:
            return _changed(token, escalation)
        try:
            if action == "ack":
                acknowledge(session, escalation, by=actor, via="web")
                flash("Acknowledged. Nobody else will be paged about this case.", "ok")
            else:
                resolve(session, escalation, by=actor, note=_note(), via="web")
                flash("Resolved. Thank you.", "ok")
        except AftercareError as exc:  # a missing or too long note: nothing changed, the form still works
            session.rollback()
            flash(f"Not done: {exc}.", "error")
    return _private(redirect(f"/e/{token}", code=303))


def _open_link(session: Session, token: str, *, lock: bool = False) -> tuple[Escalation, str] | None:
    """The escalation a valid link names, and who acts through it (the paged person's name); None when the link
    is forged, altered, expired, names nothing, or names a person of another clinic."""
    try:
        link: EscalationLink = read_escalation_token(token)
    except InvalidToken:
        return None
    query = select(Escalation).where(Escalation.id == link.escalation_id)
    # An action locks the row, so two presses at once act once (the second finds the case changed).
    escalation = session.scalar(query.with_for_update(of=Escalation) if lock else query)
    if escalation is None:
        return None
    if link.account_id is not None:  # drawn in the inbox: only in that account's own session, as that person
        account = signed_in_account(session)
        if account is None or account.id != link.account_id or account.clinic_id != escalation.clinic_id:
            return None
        return escalation, account.name
    if link.staff_id is None:
        return escalation, CLINIC_PHONE_ACTOR
    person = session.get(OnCallStaff, link.staff_id)
    if person is None or person.clinic_id != escalation.clinic_id:
        return None
    return escalation, person.name


def _form_status(link_token: str, action: str, csrf_token: str) -> str | None:
    """The escalation status the form was drawn for, when its token is ours, for this link and this action."""
    if not csrf_token:
        return None
    try:
        payload = unsign(CSRF_PURPOSE, csrf_token, max_age_seconds=get_settings().page_link_hours * 3600)
    except InvalidToken:
        return None
    if not isinstance(payload, dict) or payload.get("l") != _digest(link_token) or payload.get("a") != action:
        return None
    status = payload.get("st")
    return status if isinstance(status, str) else None


def _note() -> str:
    note = request.form.get("note", "")
    if len(note) > NOTE_MAX_CHARS:
        raise AftercareError(f"the note is longer than {NOTE_MAX_CHARS} characters")
    return note


def _from_another_site() -> bool:
    """A browser says where a POST comes from (Origin, Sec-Fetch-Site); ours come from this site's own page."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # an older browser or a script: the form token still has to be right
    return origin.rstrip("/") not in (_origin(request.host_url), _origin(get_settings().public_url))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _digest(link_token: str) -> str:
    return hashlib.sha256(link_token.encode()).hexdigest()[:32]


def _changed(token: str, escalation: Escalation) -> Response:
    """A form drawn for another state of the case (a second press, a replay, someone else was quicker)."""
    if escalation.status == EscalationStatus.RESOLVED:
        message = f"This case is already resolved (by {escalation.resolved_by})."
    elif escalation.status == EscalationStatus.ACKNOWLEDGED:
        message = f"This case is already acknowledged (by {escalation.acknowledged_by})."
    else:
        message = "This case has changed since the page was loaded."
    html = render_template("escalation_notice.html", title="Already done", message=message, back=f"/e/{token}")
    return _private(Response(html, status=409))


def _forbidden() -> Response:
    """The same empty page for every bad link or form: it tells nobody whether the case exists."""
    return _private(Response(render_template("link_invalid.html"), status=403))


def _private(response: Response) -> Response:
    """Personal data: never stored by a browser or proxy, never framed, and the link never sent to another site as a
    referrer (same-origin, not no-referrer: under no-referrer browsers send `Origin: null` with our own forms)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
