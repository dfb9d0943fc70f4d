"""The web app Twilio talks to: inbound SMS, delivery status callbacks; and /healthz and /metrics for operators.

Flask, as in Twilio's own examples: the app is three small form-encoded endpoints and needs no more.
Every Twilio request must carry a valid X-Twilio-Signature computed over our public URL: HMAC-SHA1 with the
account's auth token, or, when the request carries X-Twilio-Webhooks-Signature-Settings (a Twilio Webhook
Setting signs it with a SharedKey), the algorithm that header names with AFTERCARE_TWILIO_WEBHOOK_KEY. Anything
else gets 403 and changes nothing. The webhook paths answer with or without a trailing slash.
"""

from __future__ import annotations

import logging
import time
from xml.sax.saxutils import escape

from flask import Flask, Response, abort, g, request
from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from werkzeug.exceptions import HTTPException

from aftercare.config import Settings, get_settings
from aftercare.db import session_scope
from aftercare.health import check_health
from aftercare.inbound.handling import handle_inbound_sms
from aftercare.inbound.media import media_from_params, queue_fetch
from aftercare.inbound.status import apply_status
from aftercare.metrics import count_triage, exposition, observe_webhook

log = logging.getLogger(__name__)
MAX_REQUEST_BYTES = 64 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask("aftercare")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    _secure_sessions(app, settings)
    _register_web_side(app)
    # A webhook URL entered as ".../twilio/sms/" in Twilio's console must reach us too, not 404 (reply lost).
    app.url_map.strict_slashes = False
    public_url = settings.public_url.rstrip("/")

    def require_signature() -> dict[str, str]:
        params = _form()
        # Twilio signs the URL as configured: validate against the path as requested, trailing slash and all.
        url = public_url + request.full_path.rstrip("?")
        if not _signed_by_twilio(settings, url, params):
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
        media = media_from_params(params, int(num_media))
        with session_scope() as session:
            outcome = handle_inbound_sms(session, sid=sid, from_number=sender, to_number=params.get("To"), body=body,
                                         num_media=int(num_media), media=media,
                                         messaging_service_sid=params.get("MessagingServiceSid") or None)
        if not outcome.duplicate:
            count_triage(outcome.level)
        if media and not outcome.duplicate:
            queue_fetch(sid)  # committed: a worker fetches the photos while Twilio already has our answer
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
    def healthz() -> tuple[dict, int]:
        report = check_health(settings=settings)
        return report.as_dict(), 503 if report.failed else 200

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def time_webhook(response: Response) -> Response:
        if request.path.startswith("/twilio/") and "started" in g:
            endpoint = request.url_rule.rule if request.url_rule else "unknown"
            observe_webhook(endpoint, time.perf_counter() - g.started)
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return Response(f"{error.code} {error.name}\n", status=error.code, mimetype="text/plain")

    return app


def _signed_by_twilio(settings: Settings, url: str, params: dict[str, str]) -> bool:
    """True when the request's signature over `url` and `params` is Twilio's: the SharedKey of a Webhook Setting
    when the signature-settings header names one, else the account's auth token (HMAC-SHA1)."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
    secret = settings.twilio_webhook_key if signature_settings is not None else settings.twilio_auth_token
    if signature_settings is not None and not secret:
        log.warning("a shared-key signed webhook, but AFTERCARE_TWILIO_WEBHOOK_KEY is not set")
    if not secret or not signature:
        return False
    algorithm = get_signature_algorithm(signature_settings)
    return RequestValidator(secret).validate(url, params, signature, algorithm)


def _secure_sessions(app: Flask, settings: Settings) -> None:
    """Flask's session cookie (staff sign-in, one-time notices) signed with AFTERCARE_SECRET_KEY; never readable
    by scripts, not sent on other sites' POSTs, and only over HTTPS when the public URL is HTTPS."""
    from aftercare.staff.signing import secret_key

    app.secret_key = secret_key(settings)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=settings.public_url.lower().startswith("https://"))


def _register_web_side(app: Flask) -> None:
    """The staff pages and the enrollment API (issue 9) share this app and its server."""
    from aftercare import api, staff

    app.register_blueprint(staff.blueprint)
    app.register_blueprint(api.blueprint)


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
