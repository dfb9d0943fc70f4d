"""The local stand-in for a phone and a mailbox: messages go to <home>/outbox.jsonl and to stderr."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aftercare.channels.base import OutgoingMessage, Receipt
from aftercare.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no fcntl; O_APPEND alone still positions each write
    fcntl = None  # type: ignore[assignment]

PREVIEW_CHARS = 200
# Printed on the operator's terminal: escape sequences or bidi controls from a patient's words would drive it
# or reorder the line, so they are shown as U+FFFD. The outbox file keeps the text exactly as sent.
_NOT_PRINTED = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def outbox_path(settings: Settings) -> Path:
    return settings.home / "outbox.jsonl"


class ConsoleChannel:
    def __init__(self, settings: Settings) -> None:
        self.path = outbox_path(settings)

    def send(self, message: OutgoingMessage) -> Receipt:
        provider_id = f"console-{uuid.uuid4().hex}"
        _append_line(self.path, json.dumps(_record(provider_id, message), ensure_ascii=False))
        # Showing the number and text is this channel's purpose (it is the phone); logs never get them.
        # stderr, not stdout: commands like `dispatch --once --json` print their result on stdout.
        print(_preview(message), file=sys.stderr, flush=True)
        return Receipt(provider_id=provider_id)


def read_outbox(settings: Settings) -> list[dict[str, Any]]:
    """Everything the console channel has "sent", oldest first."""
    path = outbox_path(settings)
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _record(provider_id: str, message: OutgoingMessage) -> dict[str, Any]:
    return {
        "id": provider_id,
        "message_id": message.message_id,
        "to": message.to,
        "channel": message.channel,
        "subject": message.subject,
        "body": message.body,
        "sent_at": datetime.now(UTC).isoformat(),
    }


def _append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # O_APPEND puts each write at the end; the lock also covers a short write being completed,
        # so lines from several worker processes never interleave.
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)  # closing releases the lock


def _preview(message: OutgoingMessage) -> str:
    text = " ".join(message.body.split())
    if message.subject:
        text = f"{' '.join(message.subject.split())} | {text}"
    if len(text) > PREVIEW_CHARS:
        text = text[: PREVIEW_CHARS - 3] + "..."
    return _NOT_PRINTED.sub("\N{REPLACEMENT CHARACTER}", f"[outbox] {message.channel} -> {message.to}: {text}")
