"""The console channel: what would have been sent goes to <home>/outbox.jsonl and to stderr."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from aftercare.channels import get_channel, reset_channels
from aftercare.channels.base import OutgoingMessage
from aftercare.channels.console import ConsoleChannel, read_outbox
from aftercare.config import Settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("AFTERCARE_"):
            monkeypatch.delenv(key)
    reset_channels()
    yield
    reset_channels()


def test_each_send_appends_one_json_line_that_read_outbox_returns(tmp_path, capsys):
    settings = Settings(home=tmp_path / "home")  # the folder is created on first send
    sms = get_channel("sms", settings)
    receipt = sms.send(OutgoingMessage(message_id=3, channel="sms", to="+6281234567890", body="Kompres dingin."))
    email = get_channel("email", settings)
    email.send(OutgoingMessage(message_id=4, channel="email", to="ayu@example.com", body="Hi", subject="Day 1"))
    first, second = read_outbox(settings)
    assert first["id"] == receipt.provider_id and receipt.provider_id.startswith("console-")
    assert first["message_id"] == 3 and first["to"] == "+6281234567890" and first["channel"] == "sms"
    assert first["body"] == "Kompres dingin." and first["subject"] is None
    assert datetime.fromisoformat(first["sent_at"]).utcoffset().total_seconds() == 0
    assert second["subject"] == "Day 1" and second["channel"] == "email"
    lines = (tmp_path / "home" / "outbox.jsonl").read_text().splitlines()
    assert [json.loads(line)["message_id"] for line in lines] == [3, 4]
    printed = capsys.readouterr().err.splitlines()
    assert printed == [
        "[outbox] sms -> +6281234567890: Kompres dingin.",
        "[outbox] email -> ayu@example.com: Day 1 | Hi",
    ]


def test_the_printed_line_stays_one_short_line(tmp_path, capsys):
    ConsoleChannel(Settings(home=tmp_path)).send(
        OutgoingMessage(message_id=1, channel="sms", to="+62811", body="line one\nline two " + "x" * 400)
    )
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("[outbox] sms -> +62811: line one line two")
    assert len(line) < 260 and line.endswith("...")
    assert read_outbox(Settings(home=tmp_path))[0]["body"].startswith("line one\nline two")


@pytest.mark.parametrize("subject, body", [
    (None, "my lip \x1b]0;pwned\x07\x1b[2J hurts"), (None, "CSI \x9b31m red"), (None, "abc \u202egpj.exe"),
    ("Day 1\r\nBcc: x@evil.example", "Hi \u2066Ayu\u2069"), ("=?utf-8?q?x?= \u2028 y", "ok\x85done"),
])
def test_the_printed_line_carries_no_terminal_escape_bidi_control_or_line_break(tmp_path, capsys, subject, body):
    ConsoleChannel(Settings(home=tmp_path)).send(
        OutgoingMessage(message_id=1, channel="email", to="ayu@example.com", body=body, subject=subject))
    [line] = capsys.readouterr().err.splitlines()
    assert not [c for c in line if ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u202a\u202b\u202c\u202d\u202e"
                "\u2066\u2067\u2068\u2069\u2028\u2029"], repr(line)
    assert read_outbox(Settings(home=tmp_path))[0]["body"] == body  # the outbox keeps what was sent


def test_read_outbox_is_empty_before_anything_was_sent(tmp_path):
    assert read_outbox(Settings(home=tmp_path / "nowhere")) == []


def _send_many(home: str, worker: int) -> None:
    channel = ConsoleChannel(Settings(home=Path(home)))
    for n in range(50):
        channel.send(OutgoingMessage(message_id=worker * 1000 + n, channel="sms", to="+62811", body="b" * 3000))


def test_several_processes_append_without_interleaving(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_send_many, args=(str(tmp_path), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    rows = read_outbox(Settings(home=tmp_path))  # json.loads would fail on an interleaved line
    assert len(rows) == 200
    assert len({row["message_id"] for row in rows}) == 200
