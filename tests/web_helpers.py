"""The real web app served by waitress on loopback, and Twilio-signed requests to it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from twilio.request_validator import RequestValidator
from waitress.server import create_server

from aftercare.inbound.web import create_app
from tests.processes import AUTH_TOKEN

PUBLIC_URL = "https://aftercare.example.org"


@dataclass
class WebClient:
    base: str
    token: str = AUTH_TOKEN

    def signed_post(self, path: str, params: dict[str, str], *, url: str | None = None,
                    signature: str | None = None) -> requests.Response:
        signed_url = url or PUBLIC_URL + path
        sig = signature if signature is not None else RequestValidator(self.token).compute_signature(signed_url, params)
        headers = {"X-Twilio-Signature": sig} if sig else {}
        return requests.post(self.base + path, data=params, headers=headers, timeout=10)

    def sms(self, sender: str, body: str, *, sid: str | None = None, to: str = "+15005550006") -> requests.Response:
        params = {"MessageSid": sid or "SM" + uuid.uuid4().hex, "From": sender, "To": to, "Body": body,
                  "AccountSid": "AC" + "0" * 32}
        return self.signed_post("/twilio/sms", params)


@contextmanager
def serve_app() -> Iterator[WebClient]:
    server = create_server(create_app(), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield WebClient(base=f"http://127.0.0.1:{server.effective_port}")
    finally:
        server.close()
