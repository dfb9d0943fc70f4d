"""Delivery channels: one module per provider behind one interface, picked from the settings by name."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from aftercare.channels.base import Channel, DeliveryError, OutgoingMessage, Receipt
from aftercare.channels.console import ConsoleChannel
from aftercare.channels.smtp_email import SmtpEmailChannel
from aftercare.channels.twilio_sms import TwilioSmsChannel
from aftercare.config import Settings, get_settings

__all__ = [
    "CHANNELS",
    "Channel",
    "DeliveryError",
    "OutgoingMessage",
    "Receipt",
    "get_channel",
    "reset_channels",
]

CHANNELS: dict[str, Callable[[Settings], Channel]] = {
    "console": ConsoleChannel,
    "twilio": TwilioSmsChannel,
    "smtp": SmtpEmailChannel,
}

_cache: dict[str, tuple[int, Settings, Channel]] = {}
_cache_lock = threading.Lock()


def get_channel(kind: str, settings: Settings | None = None) -> Channel:
    """The channel for "sms" or "email", built once per process and settings (one Twilio client, pooled)."""
    settings = settings or get_settings()
    with _cache_lock:
        cached = _cache.get(kind)
        # A forked worker child rebuilds: its parent's pooled connections are not its own.
        if cached and cached[0] == os.getpid() and (cached[1] is settings or cached[1] == settings):
            return cached[2]
        channel = CHANNELS[_channel_name(kind, settings)](settings)
        _cache[kind] = (os.getpid(), settings, channel)
        return channel


def reset_channels() -> None:
    with _cache_lock:
        _cache.clear()


def _channel_name(kind: str, settings: Settings) -> str:
    if kind == "sms":
        return settings.sms_channel
    if kind == "email":
        return settings.email_channel
    raise ValueError(f"unknown channel kind {kind!r} (expected 'sms' or 'email')")
