"""A real SMTP server (aiosmtpd) on loopback that records what it receives and can be told to refuse."""

from __future__ import annotations

import threading
import time
import warnings
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

REPLIES = {
    550: "550 5.1.1 Mailbox unavailable",
    451: "451 4.3.0 Temporary failure, try again later",
    452: "452 4.2.2 Mailbox full",
    554: "554 5.7.1 Message rejected",
}


class FakeSmtp:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, credentials: tuple[str, str] | None = None) -> None:
        self.host = host
        self.port = port
        self.credentials = credentials  # when set, AUTH is required and must match
        self._records: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._rejected: dict[str, int] = {}
        self._next: list[tuple[str, int]] = []
        self._controller: _Controller | None = None

    def start(self) -> FakeSmtp:
        auth: dict[str, Any] = {}
        if self.credentials:
            auth = {"auth_required": True, "auth_require_tls": False, "authenticator": self._authenticate}
        self._controller = _Controller(
            _Recorder(self), hostname=self.host, port=self.port, server_hostname="fake-smtp.test", **auth
        )
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._records)

    @property
    def count(self) -> int:
        with self._changed:
            return len(self._records)

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self._records) >= n, timeout)

    def clear(self) -> None:
        with self._changed:
            self._records.clear()

    def reject(self, address: str, code: int = 550) -> None:
        """Refuse this recipient at RCPT TO with `code`, every time."""
        with self._changed:
            self._rejected[address.lower()] = code

    def fail_next(self, n: int = 1, code: int = 451, stage: str = "rcpt") -> None:
        """Answer the next n messages with `code` at RCPT TO (stage="rcpt") or after DATA (stage="data")."""
        if stage not in ("rcpt", "data"):
            raise ValueError("stage is 'rcpt' or 'data'")
        with self._changed:
            self._next.extend([(stage, code)] * n)

    # -- called from the server's event loop thread -----------------------------------------------
    def refusal(self, stage: str, address: str | None = None) -> str | None:
        with self._changed:
            if address is not None and address.lower() in self._rejected:
                return _reply(self._rejected[address.lower()])
            if self._next and self._next[0][0] == stage:
                return _reply(self._next.pop(0)[1])
        return None

    def record(self, envelope: Any) -> None:
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        record = {
            "to": parsed["To"],
            "recipients": list(envelope.rcpt_tos),
            "from_": envelope.mail_from,
            "from_header": parsed["From"],
            "subject": parsed["Subject"],
            "body": body.get_content() if body is not None else "",
            "message_id": parsed["Message-ID"],
            "at": time.time(),
        }
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        given = (auth_data.login.decode(), auth_data.password.decode())
        ok = given == self.credentials
        return AuthResult(success=ok, handled=False)


class _Recorder:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        refusal = self.fake.refusal("rcpt", address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        refusal = self.fake.refusal("data")
        if refusal:
            return refusal
        self.fake.record(envelope)
        return "250 Message accepted for delivery"


class _Controller(Controller):
    def factory(self) -> Any:
        with warnings.catch_warnings():
            # Plain-text AUTH is the point of the credentials test; loopback carries no secret worth TLS.
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            return super().factory()

    def _trigger_server(self) -> None:
        # Asked for port 0, the OS picked one: learn it before aiosmtpd connects to itself.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def _reply(code: int) -> str:
    return REPLIES.get(code, f"{code} {'4.0.0' if code < 500 else '5.0.0'} Refused by the fake")
