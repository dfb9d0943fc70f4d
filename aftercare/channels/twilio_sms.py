"""SMS through Twilio's REST API with the official SDK; Twilio's error codes are mapped here and nowhere else."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import certifi
import urllib3
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.util.retry import Retry

from aftercare.channels.base import TIMEOUT_CODE, DeliveryError, OutgoingMessage, Receipt
from aftercare.config import Settings

# Twilio answers in well under a second; a request still open after this is better retried later
# than left holding a worker thread.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 10.0
# Enough pooled keep-alive connections for every send thread of a worker, with room to spare:
# past the pool size urllib3 opens and throws away a connection per request.
POOL_MAXSIZE = 32

OPTED_OUT_CODES = frozenset({21610})  # "Attempt to send to unsubscribed recipient" (the patient texted STOP)
# Clocks differ: a message Twilio stamped a little before our own attempt time is still the one we asked for.
CLOCK_SKEW = timedelta(minutes=2)
# The number (or the message) can never be delivered as it is: retrying only repeats the error. Any other
# 4xx is permanent too; these get a clearer description.
PERMANENT_CODES = {
    21211: "invalid 'To' number",
    21408: "sending to this region is not enabled",
    21602: "message body required",
    21604: "'To' number required",
    21606: "'From' number cannot send to this destination",
    21612: "'To' number not reachable by SMS",
    21614: "'To' number is not a mobile number",
    21617: "message body too long",
}
RATE_LIMITED_CODE = 20429

_sdk_logger = logging.getLogger("aftercare.channels.twilio_sdk")


class PooledHttpClient(HttpClient):
    """The SDK's HTTP transport on one urllib3 pool, shared by every send thread of the process."""

    # Why not the SDK's own TwilioHttpClient: a requests Session is not documented as thread-safe, and
    # it costs twice the CPU per send (proxy settings re-read from the environment, requests' objects
    # built on every call), which the dispatch benchmark feels. Any HttpClient plugs into the SDK.

    def __init__(self, base_url: str) -> None:
        super().__init__(_sdk_logger, is_async=False, timeout=READ_TIMEOUT_SECONDS)
        # Connect errors are retried because nothing reached Twilio yet; a read error is not, since Twilio
        # may already have accepted the message and a retry here would send it twice.
        retries = Retry(total=2, connect=2, read=False, status=False, other=0, redirect=False, backoff_factor=0.05)
        options: dict[str, Any] = {
            "num_pools": 4,
            "maxsize": POOL_MAXSIZE,
            "retries": retries,
            "ca_certs": certifi.where(),  # the bundle the SDK's requests-based client trusts
        }
        proxy = _proxy_for(base_url)
        self.pool = urllib3.ProxyManager(proxy, **options) if proxy else urllib3.PoolManager(**options)
        # The API host's own pool, taken from the manager once: each request then skips the manager's URL
        # parsing and pool lookup (a quarter of urllib3's CPU per send). Through a proxy the manager adds its
        # headers, so requests go through it as they are.
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"  # requests to it name only the path, as the manager does
        self.api_pool = None if proxy else self.pool.connection_from_url(base_url)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        if auth:
            headers.update(urllib3.make_headers(basic_auth=":".join(auth)))
        if params:
            url = f"{url}?{urlencode(params, doseq=True)}"
        if headers.get("Content-Type", "").startswith(("application/json", "application/scim+json")):
            body = json.dumps(data)
        else:
            body = urlencode(data or {}, doseq=True)
        limits = urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=timeout or self.timeout)
        if self.api_pool is not None and url.startswith(self.origin + "/"):
            answer = self.api_pool.urlopen(method, url[len(self.origin):], body=body, headers=headers, redirect=allow_redirects,
                                           timeout=limits)
        else:
            answer = self.pool.request(method, url, body=body, headers=headers, redirect=allow_redirects,
                                       timeout=limits)
        return Response(answer.status, answer.data.decode("utf-8"), answer.headers)


def _proxy_for(url: str) -> str | None:
    """An HTTPS_PROXY / NO_PROXY from the environment, looked up once for the one host we call."""
    parts = urlsplit(url)
    if proxy_bypass(parts.hostname or ""):
        return None
    return getproxies().get(parts.scheme)


def build_client(settings: Settings) -> Client:
    """A Twilio client pointed at settings.twilio_api_base_url, safe to share between threads."""
    base_url = settings.twilio_api_base_url.rstrip("/")
    http_client = PooledHttpClient(base_url)
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)
    # Settings are the only configuration: the SDK would otherwise read TWILIO_EDGE / TWILIO_REGION
    # from the environment and rewrite the host of every request.
    client.edge = None
    client.region = None
    # Domain.absolute_url() reads base_url on every request, so this redirects all API calls.
    client.api.base_url = base_url
    return client


class TwilioSmsChannel:
    def __init__(self, settings: Settings) -> None:
        self.client = build_client(settings)
        self.default_from = settings.twilio_from
        self.messaging_service_sid = settings.twilio_messaging_service_sid

    def send(self, message: OutgoingMessage) -> Receipt:
        if message.unconfirmed_since is not None:
            sid = self._created_since(message, message.unconfirmed_since)
            if sid is not None:
                return Receipt(provider_id=sid)  # the timed-out attempt did go out: record it, never send twice
        try:
            created = self.client.messages.create(**self._params(message))
        except (TwilioRestException, TwilioServiceException) as exc:
            # "from None": the SDK's message can quote the phone number, and a chained traceback gets logged.
            raise classify_twilio_error(exc.status, exc.code) from None
        except (urllib3.exceptions.ReadTimeoutError, urllib3.exceptions.ProtocolError) as exc:
            # The request went out and no answer came back: Twilio may have accepted it.
            raise _unconfirmed(exc) from None
        except (urllib3.exceptions.HTTPError, OSError, TwilioException) as exc:
            # Refused, or the connection failed before the request went out: Twilio may be fine in a minute.
            raise DeliveryError(
                f"twilio unreachable: {type(exc).__name__}", permanent=False, code="connection"
            ) from None
        return Receipt(provider_id=created.sid)

    def _created_since(self, message: OutgoingMessage, since: datetime) -> str | None:
        """The SID of a message Twilio created with this text to this number (from our sender) at or after
        `since` (UTC), or None. A lookup that fails raises the same "unconfirmed" error, so that the next try
        asks again rather than sending blind."""
        filters: dict[str, Any] = {"to": message.to, "date_sent_after": since - CLOCK_SKEW, "limit": 50}
        sender = message.sender or self.default_from
        if sender:
            filters["from_"] = sender
        try:
            found = self.client.messages.list(**filters)
        except (TwilioRestException, TwilioServiceException, TwilioException,
                urllib3.exceptions.HTTPError, OSError) as exc:
            raise _unconfirmed(exc) from None
        for candidate in found:
            stamped = candidate.date_created or candidate.date_sent
            if candidate.body == message.body and (stamped is None or stamped >= since - CLOCK_SKEW):
                return candidate.sid
        return None

    def _params(self, message: OutgoingMessage) -> dict[str, str]:
        params = {"to": message.to, "body": message.body}
        if message.status_callback:
            params["status_callback"] = message.status_callback
        sender = message.sender or self.default_from
        if sender:
            params["from_"] = sender
        else:
            params["messaging_service_sid"] = self.messaging_service_sid
        return params


def _unconfirmed(exc: Exception) -> DeliveryError:
    return DeliveryError(f"twilio did not answer: {type(exc).__name__}; the message may have been accepted",
                         permanent=False, code=TIMEOUT_CODE)


def is_opt_out(code: str | int | None) -> bool:
    """Whether a Twilio error code (from the API or a status callback) means the person unsubscribed."""
    try:
        return int(code) in OPTED_OUT_CODES if code is not None else False
    except (TypeError, ValueError):
        return False


def classify_twilio_error(status: int, code: int | None) -> DeliveryError:
    """Map a Twilio error response to a DeliveryError; the text carries codes only, never the number."""
    label = f"twilio error {code} (HTTP {status})"
    code_text = str(code) if code is not None else str(status)
    if is_opt_out(code):
        return DeliveryError(f"{label}: recipient opted out", permanent=True, code=code_text, opted_out=True)
    if code in PERMANENT_CODES:
        return DeliveryError(f"{label}: {PERMANENT_CODES[code]}", permanent=True, code=code_text)
    if status == 429 or code == RATE_LIMITED_CODE:
        return DeliveryError(f"{label}: rate limited", permanent=False, code=code_text)
    if status >= 500:
        return DeliveryError(f"{label}: server error", permanent=False, code=code_text)
    if status == 401:
        # Wrong credentials fail every message alike: a configuration problem to fix, after which
        # the retries go through, rather than a reason to give up on (or fall back for) this message.
        return DeliveryError(f"{label}: authentication failed", permanent=False, code=code_text)
    if 400 <= status < 500:
        return DeliveryError(f"{label}: rejected", permanent=True, code=code_text)
    return DeliveryError(f"{label}: unexpected response", permanent=False, code=code_text)
