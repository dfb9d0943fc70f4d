"""Email through an SMTP relay with smtplib; SMTP reply codes are mapped to DeliveryError here."""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate, make_msgid, parseaddr
from functools import cache

from aftercare.channels.base import DeliveryError, OutgoingMessage, Receipt
from aftercare.config import Settings

DEFAULT_SUBJECT = "Aftercare"
# Rejections that mean our credentials or TLS setup are wrong, whatever command they answer.
AUTH_REPLY_CODES = frozenset({530, 534, 535, 538})
# Line breaks of any kind (str.splitlines' set) and other controls, which have no place in a header value.
_NOT_IN_HEADERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _StrictHeaderPolicy(EmailPolicy):
    """The default policy refuses a raw line break in a header value, but decodes RFC 2047 encoded words
    ("=?utf-8?q?Ayu=0AReply-To:...?=") and then writes the decoded line break out as is (CPython before
    3.11.10 / 3.12.5, CVE-2024-6923): a name could add a header. This one also refuses a value whose decoded
    text holds a line break or control character."""

    def header_store_parse(self, name, value):  # type: ignore[no-untyped-def]
        name, header = super().header_store_parse(name, value)
        if _NOT_IN_HEADERS.search(str(header)):
            raise ValueError(f"header {name} would contain a line break or control character")
        return name, header


STRICT_HEADERS = _StrictHeaderPolicy()


class SmtpEmailChannel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, message: OutgoingMessage) -> Receipt:
        sender = message.sender or self.settings.email_from
        try:
            email = build_email(message, sender)
        except ValueError:
            # A line break in an address or subject (header injection) can never be sent as it is.
            raise DeliveryError("invalid email header", permanent=True, code="invalid") from None
        # "from None" below: smtplib's exception text can quote the address, and chained tracebacks get logged.
        try:
            self._deliver(email, sender, message.to)
        except smtplib.SMTPAuthenticationError as exc:
            # Wrong credentials fail every message alike: a configuration problem, fixed once for all,
            # after which the retries go through. Calling it permanent would fail (or fall back for)
            # every message sent meanwhile, though nothing is wrong with any of them.
            raise DeliveryError("smtp authentication failed", permanent=False, code=str(exc.smtp_code)) from None
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            # The server turned away the connection, not this message.
            raise DeliveryError("smtp server refused the session", permanent=False, code=str(exc.smtp_code)) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc) from None
        except smtplib.SMTPResponseException as exc:
            raise classify_smtp_reply(exc.smtp_code, "smtp rejected the message") from None
        except smtplib.SMTPNotSupportedError:
            raise DeliveryError("smtp server lacks a needed extension", permanent=False, code="config") from None
        except (smtplib.SMTPException, OSError) as exc:
            # Disconnected, refused, timed out, TLS handshake: the server may be fine in a minute.
            raise DeliveryError(f"smtp unreachable: {type(exc).__name__}", permanent=False, code="connection") from None
        return Receipt(provider_id=email["Message-ID"])

    def _deliver(self, email: EmailMessage, sender: str, to: str) -> None:
        s = self.settings
        with smtplib.SMTP(s.smtp_host, s.smtp_port, local_hostname=_local_hostname(), timeout=s.smtp_timeout) as smtp:
            if s.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(email, from_addr=parseaddr(sender)[1], to_addrs=[to])


def build_email(message: OutgoingMessage, sender: str) -> EmailMessage:
    """The email itself, with a Message-ID of ours so the receipt can name it; ValueError if a header value
    (address, subject) holds a line break, raw or mail-encoded, since that would inject a header."""
    email = EmailMessage(policy=STRICT_HEADERS)
    email["From"] = sender
    email["To"] = message.to
    email["Subject"] = message.subject or DEFAULT_SUBJECT
    email["Date"] = formatdate(usegmt=True)
    # An explicit domain: make_msgid() would otherwise resolve this host's FQDN on every call.
    email["Message-ID"] = make_msgid(domain=_domain_of(sender))
    email.set_content(message.body)
    return email


def classify_smtp_reply(code: int, what: str) -> DeliveryError:
    if code in AUTH_REPLY_CODES:
        return DeliveryError(f"{what}: authentication required ({code})", permanent=False, code=str(code))
    # 5xx is the server's final word on this message; 4xx (greylisting, mailbox busy) asks us to retry.
    return DeliveryError(f"{what} ({code})", permanent=500 <= code < 600, code=str(code))


def _refused(exc: smtplib.SMTPRecipientsRefused) -> DeliveryError:
    # One recipient per message, so one reply code; its text may quote the address and is dropped.
    codes = [code for code, _reply in exc.recipients.values()]
    return classify_smtp_reply(max(codes, default=550), "smtp refused the recipient")


def _domain_of(address: str) -> str:
    _name, addr = parseaddr(address)
    return addr.rpartition("@")[2] or "aftercare.invalid"


@cache
def _local_hostname() -> str:
    # smtplib looks up the FQDN for EHLO on every connection unless told; once per process is enough.
    return socket.getfqdn()
