"""The web app Twilio talks to: inbound SMS, delivery status callbacks, and a health check.

Flask, as in Twilio's own examples: the app is three small form-encoded endpoints and needs no more.
Every Twilio request must carry a valid X-Twilio-Signature computed over our public URL; anything else
gets 403 and changes nothing.
"""

from __future__ import annotations

import logging
from xml.sax.saxutils import escape

from flask import Flask, Response, abort, request
from sqlalchemy import text
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException

from aftercare.config import Settings, get_settings
from aftercare.db import session_scope
from aftercare.inbound.handling import handle_inbound_sms
from aftercare.inbound.status import apply_status

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask("aftercare")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    validator = RequestValidator(settings.twilio_auth_token)
    public_url = settings.public_url.rstrip("/")

    def require_signature() -> dict[str, str]:
        params = _form()
        url = public_url + request.full_path.rstrip("?")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not settings.twilio_auth_token or not signature or not validator.validate(url, params, signature):
            log.warning("rejected %s: bad or missing Twilio signature", request.path)
            abort(403)
        return params

    @app.post("/twilio/sms")
    def inbound_sms() -> Response:
        params = require_signature()
        sid, sender, body = params.get("MessageSid", ""), params.get("From", ""), params.get("Body", "")
        num_media = params.get("NumMedia") or "0"
        if not sid or not sender or len(sid) > 64 or "\x00" in sid or not num_media.isdigit() or len(num_media) > 3:
            abort(400)
        with session_scope() as session:
            outcome = handle_inbound_sms(session, sid=sid, from_number=sender, to_number=params.get("To"), body=body,
                                         num_media=int(num_media))
        return _twiml(outcome.answers)

    @app.post("/twilio/status")
    def status_callback() -> Response:
        params = require_signature()
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if not sid or len(sid) > 64 or "\x00" in sid:
            abort(400)
        with session_scope() as session:
            apply_status(session, message_sid=sid, status=params.get("MessageStatus", ""),
                         error_code=params.get("ErrorCode") or None)
        return Response(status=204)

    @app.get("/healthz")
    def healthz() -> dict:
        with session_scope() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return Response(f"{error.code} {error.name}\n", status=error.code, mimetype="text/plain")

    return app


def _form() -> dict[str, str]:
    """The form body as a flat dict; a body that is not valid form data is a client error, never a 500."""
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        abort(415)
    try:
        return {key: request.form.get(key, "") for key in request.form}
    except (UnicodeDecodeError, ValueError):
        abort(400)


def _twiml(answers: list[str]) -> Response:
    messages = "".join(f"<Message>{escape(text)}</Message>" for text in answers)
    body = f'<?xml version="1.0" encoding="UTF-8"?><Response>{messages}</Response>'
    return Response(body, mimetype="application/xml")
