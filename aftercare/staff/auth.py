"""Staff sign-in for the web inbox: GET/POST /signin, POST /signout, and `login_required` for the pages behind it.

The session is Flask's signed cookie (key: app.secret_key, from signing.secret_key): HttpOnly, SameSite=Lax,
Secure when AFTERCARE_PUBLIC_URL is https, and it ends after SESSION_HOURS. It holds the staff id and a session
version (accounts.session_version): a new password, or deactivating the account, ends it at the next request.

Every POST form carries a CSRF token kept in the session (`csrf_token()` / `check_csrf()`); a POST without the
right one is refused with 403 before anything else happens. Failed sign-ins are counted per email in this
process: after MAX_FAILURES in FAILURE_WINDOW the email must wait, whether or not it has an account. An unknown
email and a wrong password get the same message, and cost the same time (accounts.authenticate).
"""

from __future__ import annotations

import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response

from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.models import StaffAccount
from aftercare.staff import blueprint
from aftercare.staff.accounts import MAX_PASSWORD, authenticate, session_version

log = logging.getLogger(__name__)

SESSION_HOURS = 12
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
SIGNIN_FAILED = "That email and password do not match an account. Please try again."
TOO_MANY = "Too many tries for this email. Please wait {minutes} minutes, then try again."


@blueprint.record_once
def _session_cookie(state: BlueprintSetupState) -> None:
    """The session cookie's flags, set once on the app that registers the staff pages."""
    state.app.config.update(SESSION_COOKIE_NAME="aftercare_session", SESSION_COOKIE_HTTPONLY=True,
                            SESSION_COOKIE_SAMESITE="Lax",
                            SESSION_COOKIE_SECURE=get_settings().public_url.lower().startswith("https://"),
                            PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))


class FailureCounter:
    """Failed sign-ins per key (email) in a sliding window, in memory: each web process counts its own, which
    still caps guessing at MAX_FAILURES per window per process. Thread-safe (waitress serves with threads)."""

    def __init__(self, limit: int = MAX_FAILURES, window: timedelta = FAILURE_WINDOW) -> None:
        self.limit, self.window = limit, window.total_seconds()
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait_seconds(self, key: str) -> float:
        """0 when `key` may try now, else how many seconds until the oldest counted failure leaves the window."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(key)
            if failures is None:
                return 0.0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[key]
                return 0.0
            return failures[0] + self.window - now if len(failures) >= self.limit else 0.0

    def fail(self, key: str) -> None:
        with self._lock:
            self._failures.setdefault(key, deque()).append(time.monotonic())

    def clear(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


failures = FailureCounter()


def csrf_token() -> str:
    """This session's CSRF token (made on first use); put it in every POST form as `csrf_token`."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """403 unless the form's csrf_token is this session's token."""
    sent, expected = request.form.get("csrf_token", ""), session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("refused %s: missing or wrong CSRF token", request.path)
        abort(403)


def no_store(response: Any) -> Response:
    """The response with caching forbidden: pages with patients' words must not stay in a shared cache."""
    response = make_response(response)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def signed_in_account(db: Any) -> StaffAccount | None:
    """The web account signed in in this request's session (see _signed_in), or None."""
    return _signed_in(db)


def _signed_in(db: Any) -> StaffAccount | None:
    """The signed-in, still active account whose password has not changed since, or None."""
    staff_id, version = session.get("staff"), session.get("v")
    if not isinstance(staff_id, int) or not isinstance(version, str):
        return None
    staff = db.get(StaffAccount, staff_id)
    if staff is None or not staff.active or not hmac.compare_digest(version, session_version(staff)):
        return None
    return staff


def login_required(view: Callable[..., Any]) -> Callable[..., Response]:
    """Run `view` with `g.db` (one unit of work for the request: committed on success, rolled back on any error
    or abort), `g.staff` (the signed-in StaffAccount) and `g.clinic` (theirs). Not signed in, deactivated, or
    signed in with an old password: to /signin. A POST must carry the CSRF token (403 otherwise)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        if request.method == "POST":
            check_csrf()
        with session_scope() as db:
            staff = _signed_in(db)
            if staff is None:
                was_signed_in = "staff" in session
                session.clear()
                if was_signed_in:
                    flash("You have been signed out. Please sign in again.", "error")
                return no_store(redirect(url_for("staff.signin"), code=303))
            g.db, g.staff, g.clinic = db, staff, staff.clinic
            return no_store(view(*args, **kwargs))

    return wrapper


@blueprint.get("/signin")
def signin() -> Response:
    return no_store(render_template("signin.html", csrf_token=csrf_token(), email=""))


@blueprint.post("/signin")
def signin_post() -> Response:
    check_csrf()
    email, password = request.form.get("email", ""), request.form.get("password", "")
    key = email.strip().lower()[:254]
    if wait := failures.wait_seconds(key):
        flash(TOO_MANY.format(minutes=max(1, round(wait / 60))), "error")
        return no_store((render_template("signin.html", csrf_token=csrf_token(), email=email[:254]), 429))
    with session_scope() as db:
        staff = authenticate(db, email, password[:MAX_PASSWORD + 1]) if email and password else None
        if staff is None:
            failures.fail(key)
            log.info("a sign-in failed")  # no email: it is personal data
            flash(SIGNIN_FAILED, "error")
            return no_store((render_template("signin.html", csrf_token=csrf_token(), email=email[:254]), 401))
        staff_id, version = staff.id, session_version(staff)
    failures.clear(key)
    # A fresh session (and CSRF token) on sign-in: nothing planted before it survives.
    session.clear()
    session.permanent = True
    session["staff"], session["v"] = staff_id, version
    csrf_token()
    return no_store(redirect(url_for("staff.inbox"), code=303))


@blueprint.post("/signout")
def signout() -> Response:
    check_csrf()
    with session_scope() as db:
        account = _signed_in(db)
        if account is not None:  # a cookie is kept by the browser (or copied): make every earlier one stale
            account.session_epoch = (account.session_epoch or 0) + 1
    session.clear()
    flash("You are signed out.", "status")
    return no_store(redirect(url_for("staff.signin"), code=303))
