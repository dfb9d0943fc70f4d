"""The one interface every channel implements: send(message) -> Receipt, or raise DeliveryError."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# The code of a send that timed out after the request went out: the provider may have accepted the message, so
# the next attempt first asks whether it did (see OutgoingMessage.unconfirmed_since) instead of sending blind.
TIMEOUT_CODE = "timeout"


@dataclass(frozen=True)
class OutgoingMessage:
    """One message to hand to a provider; `to` and `body` are personal data and never logged."""

    message_id: int | None
    channel: str  # "sms" | "email"
    to: str
    body: str
    sender: str | None = None  # SMS: a clinic's own from number; email: a From address override
    subject: str | None = None  # email only
    status_callback: str | None = None  # SMS: full URL Twilio posts delivery status to
    # When an earlier attempt timed out waiting for the provider's answer (UTC): the channel looks for a message
    # it created since then and returns that one's receipt rather than sending a second copy.
    unconfirmed_since: datetime | None = None


@dataclass(frozen=True)
class Receipt:
    provider_id: str
    status: str = "sent"


class DeliveryError(Exception):
    """A send failed. permanent=True means retrying cannot help (bad number, opted out, rejected)."""

    def __init__(self, message: str, *, permanent: bool, code: str | None = None, opted_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.opted_out = opted_out

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args) by default, which would drop the keyword-only fields
        # (and fail: `permanent` is required) when Celery or multiprocessing carries one across processes.
        return (_restore_delivery_error, (self.message, self.permanent, self.code, self.opted_out))

    def __repr__(self) -> str:
        return (
            f"DeliveryError({self.message!r}, permanent={self.permanent}, code={self.code!r}, "
            f"opted_out={self.opted_out})"
        )


def _restore_delivery_error(message: str, permanent: bool, code: str | None, opted_out: bool) -> DeliveryError:
    return DeliveryError(message, permanent=permanent, code=code, opted_out=opted_out)


class Channel(Protocol):
    def send(self, message: OutgoingMessage) -> Receipt: ...
