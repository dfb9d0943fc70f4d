"""Signed, expiring tokens for links (itsdangerous): a page's link to its escalation, a photo's address.

Each token names its purpose (the itsdangerous salt), so a photo token can never open an escalation page. The key
is AFTERCARE_SECRET_KEY; on embedded defaults one is made once and kept in the data folder (`secret_key`).
"""

from __future__ import annotations

import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from aftercare.config import Settings, get_settings

_KEY_FILE = "secret_key"


class InvalidToken(Exception):
    """A token that was forged, altered, made for another purpose, or has expired."""


def secret_key(settings: Settings | None = None) -> str:
    """AFTERCARE_SECRET_KEY, or on embedded defaults a random key kept in HOME/secret_key (made on first use)."""
    settings = settings or get_settings()
    if settings.secret_key:
        return settings.secret_key
    path = settings.home / _KEY_FILE
    if not path.exists():
        settings.home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def sign(purpose: str, payload: Any, *, settings: Settings | None = None) -> str:
    """A URL-safe token carrying `payload` (JSON-able) for `purpose` ("escalation", "media", ...)."""
    return URLSafeTimedSerializer(secret_key(settings), salt=purpose).dumps(payload)


def unsign(purpose: str, token: str, *, max_age_seconds: float, settings: Settings | None = None) -> Any:
    """The payload of a token made by `sign(purpose, ...)` at most `max_age_seconds` ago; InvalidToken otherwise."""
    try:
        return URLSafeTimedSerializer(secret_key(settings), salt=purpose).loads(token, max_age=max_age_seconds)
    except BadSignature:  # SignatureExpired is a BadSignature too
        raise InvalidToken(f"invalid or expired {purpose} link") from None
