"""A fake Twilio REST API on loopback, for the real `twilio` SDK in tests and benchmarks.

It answers POST /2010-04-01/Accounts/{AccountSid}/Messages.json as Twilio does (201 with a message
resource, or an error JSON with code/message/more_info/status), records every request, and can be told
to fail, or to accept a message and then hold its answer (stall_next: the client's read times out). GET on the
same path lists the accepted messages, filtered by To, From and DateSent> (DateSent>= too), newest first. Run it in-process (FakeTwilio() as a context manager) or as its own process:

    python -m tests.fakes.twilio_api --port 0      # prints the base URL, then serves until SIGTERM/SIGINT

Media (MMS photos): add_media() makes a MediaUrl as Twilio sends it in a webhook. GET on it needs the account's
basic auth and answers, like Twilio, with a redirect to a pre-signed CDN address (/_cdn/<id> here, no auth) that
serves the bytes; TINY_PNG and TINY_JPEG are real images, `size=` streams that many filler bytes (an oversized
photo) and records how many were written before the client hung up.

Out of process, GET /_fake/stats, GET /_fake/messages, POST /_fake/config and POST /_fake/clear stand in
for the Python helpers.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import uuid
import zlib
from datetime import UTC, datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages\.json$")
MEDIA_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages/[^/]+/Media/(?P<media_sid>[^/]+)$")
CDN_PATH = re.compile(r"^/_cdn/(?P<media_sid>[^/]+)$")


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real (decodable) PNG of one colour, made with the standard library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (len(data).to_bytes(4, "big") + kind + data
                + zlib.crc32(kind + data).to_bytes(4, "big"))
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TINY_PNG = _png(4, 4, (200, 40, 40))
# A minimal 1x1 greyscale baseline JPEG (JFIF): what the magic-number check and a browser see of a phone photo.
TINY_JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b0b0c1912130f141d1a1f"
    "1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e333432ffc0000b080001000101011100ffc4001f0000"
    "010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d010203000411"
    "05122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445"
    "464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9"
    "aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda00080101"
    "00003f00fbd3ffd9")

ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    20503: "Service is unavailable. Please try again",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
    21604: "A 'To' phone number is required.",
    21606: "The 'From' phone number provided is not a valid message-capable Twilio phone number.",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
}
DEFAULT_CODES = {400: 21211, 401: 20003, 404: 20404, 429: 20429, 500: 20500, 503: 20503}


class FakeTwilio:
    """The fake API server. Thread-safe; every helper may be called while requests are being served."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, auth_token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.auth_token = auth_token  # None: any password is accepted, only the account sid is checked
        self.latency = 0.0  # seconds to wait before answering, like a real API's round trip
        self._records: list[dict[str, Any]] = []
        self._failures: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._faults = _Faults()
        self._stalls: list[float] = []  # seconds to hold the answer to each next accepted message
        self._swallow = 0  # how many next messages are taken in and never answered nor created
        self.swallowed: list[dict[str, Any]] = []
        self._released = threading.Event()  # set on stop: held requests end with the fake
        # Called with each accepted message's record before its answer goes back: e.g. to post the status
        # callback that real Twilio can deliver before the sender has read the API's answer.
        self.on_accept: Any = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._media: dict[str, dict[str, Any]] = {}
        self._media_requests: list[dict[str, Any]] = []

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> FakeTwilio:
        self._server = server = _Server((self.host, self.port), _Handler, self)
        self.port = server.server_address[1]
        # A short poll interval: stop() waits for the serving loop to notice, once per test.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-twilio", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._released.set()
        self._server.shutdown()
        self._server.close_all()
        self._server = None

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- what was received ---------------------------------------------------------------------------
    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._records)

    @property
    def failures(self) -> list[dict[str, Any]]:
        with self._changed:
            return list(self._failures)

    @property
    def count(self) -> int:
        with self._changed:
            return len(self._records)

    def stats(self) -> dict[str, int]:
        with self._changed:
            return {"accepted": len(self._records), "failed": len(self._failures)}

    def wait_for(self, n: int, timeout: float = 5.0) -> bool:
        """Wait until at least n messages were accepted; False if the timeout came first."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._records) >= n, timeout)

    def clear(self) -> None:
        """Forget recorded messages and failures (fault settings stay)."""
        with self._changed:
            self._records.clear()
            self._failures.clear()

    def reset(self) -> None:
        """Forget everything: records, failures, faults and latency."""
        self.clear()
        self._faults = _Faults()
        self.latency = 0.0
        self.on_accept = None
        with self._changed:
            self._stalls.clear()

    # -- fault injection -----------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, code: int | None = None) -> None:
        self._faults.add_next(n, status, code)

    def fail_for(self, to_number: str, status: int = 400, code: int | None = 21610) -> None:
        """Every message to this number fails this way until reset()."""
        self._faults.add_number(to_number, status, code)

    def fail_rate(self, fraction: float, statuses: tuple[int, ...] = (500, 429), seed: int | None = None) -> None:
        self._faults.set_rate(fraction, statuses, seed)

    def stall_next(self, n: int = 1, seconds: float = 2.0) -> None:
        """Accept the next n messages (they are created and listed) but hold each answer this long, as when
        Twilio takes a message and the response is lost or late."""
        with self._changed:
            self._stalls.extend([seconds] * n)

    def take_stall(self) -> float:
        with self._changed:
            return self._stalls.pop(0) if self._stalls else 0.0

    def swallow_next(self, n: int = 1) -> None:
        """The next n messages are read and then held unanswered until the client goes away or the fake stops,
        and never created: a request lost on its way, with the sender still waiting (e.g. when it dies)."""
        with self._changed:
            self._swallow += n

    def _take_swallow(self, form: dict[str, str]) -> bool:
        with self._changed:
            if not self._swallow:
                return False
            self._swallow -= 1
            self.swallowed.append({"to": form.get("To"), "body": form.get("Body"), "at": time.time()})
            self._changed.notify_all()
            return True

    def hold_until_released(self) -> None:
        self._released.wait(600)

    # -- media (MMS photos) ---------------------------------------------------------------------------
    def add_media(self, account_sid: str, body: bytes = TINY_PNG, *, content_type: str = "image/png",
                  size: int | None = None, redirect: bool = True, declare_length: bool = True,
                  status: int = 200) -> str:
        """A MediaUrl of this account, as a webhook carries it. `size`: serve that many filler bytes instead of
        `body`; `declare_length=False`: no Content-Length (the body ends when the connection closes);
        `redirect=False`: the bytes come straight from the API URL; `status`: answer with that error instead."""
        media_sid = "ME" + uuid.uuid4().hex
        with self._changed:
            self._media[media_sid] = {"body": body, "content_type": content_type, "size": size,
                                      "redirect": redirect, "declare_length": declare_length, "status": status}
        return f"{self.base_url}/2010-04-01/Accounts/{account_sid}/Messages/MM{uuid.uuid4().hex}/Media/{media_sid}"

    @property
    def media_requests(self) -> list[dict[str, Any]]:
        """Every request for media: {"path", "authorization" (the header or None), "status", "bytes_sent"}."""
        with self._changed:
            return [dict(r) for r in self._media_requests]

    def media_request(self, path: str, authorization: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
        record: dict[str, Any] = {"path": path, "authorization": authorization, "status": None, "bytes_sent": 0}
        with self._changed:
            self._media_requests.append(record)
            match = MEDIA_PATH.match(path) or CDN_PATH.match(path)
            return record, (self._media.get(match["media_sid"]) if match else None)

    def list_messages(self, account_sid: str, query: dict[str, str]) -> dict[str, Any]:
        """The Messages list resource: accepted messages of this account, newest first, filtered as Twilio does
        by To, From and the time sent (messages here are sent the moment they are accepted)."""
        since = query.get("DateSent>") or query.get("DateSent>=")
        since_at = _parse_time(since) if since else None
        found = [r for r in reversed(self.messages) if r["account_sid"] == account_sid
                 and query.get("To") in (None, r["to"]) and query.get("From") in (None, r["from_"])
                 and (since_at is None or r["at"] >= since_at)]
        size = int(query.get("PageSize") or 50)
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        return {"messages": [_message_resource(r) for r in found[:size]], "end": min(size, len(found)) - 1,
                "first_page_uri": uri, "next_page_uri": None, "page": 0, "page_size": size,
                "previous_page_uri": None, "start": 0, "uri": uri}

    # -- request handling (called from server threads) -----------------------------------------------
    def handle_message(self, account_sid: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        record = {
            "to": form.get("To"),
            "from_": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body"),
            "status_callback": form.get("StatusCallback"),
            "account_sid": account_sid,
            "at": time.time(),
        }
        fault = self._faults.pick(record["to"]) or _validation_fault(record)
        if fault:
            return self._refuse(record, *fault)
        record["sid"] = "SM" + uuid.uuid4().hex
        with self._changed:
            self._records.append(record)
            self._changed.notify_all()
        if self.on_accept is not None:
            self.on_accept(record)
        return 201, _message_resource(record)

    def _refuse(self, record: dict[str, Any], status: int, code: int | None) -> tuple[int, dict[str, Any]]:
        code = code if code is not None else DEFAULT_CODES.get(status, status)
        with self._changed:
            self._failures.append({**record, "status": status, "code": code})
        return status, error_payload(status, code)

    def configure(self, options: dict[str, Any]) -> None:
        """The out-of-process control: {"fail_rate": f, "statuses": [...], "seed": s, "latency": seconds}."""
        if "fail_rate" in options:
            statuses = tuple(options.get("statuses") or (500, 429))
            self.fail_rate(float(options["fail_rate"]), statuses, options.get("seed"))
        if "latency" in options:
            self.latency = float(options["latency"])


class _Faults:
    """The failures still to hand out; shared by all server threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: list[tuple[int, int | None]] = []
        self._numbers: dict[str, tuple[int, int | None]] = {}
        self._rate = 0.0
        self._rate_statuses: tuple[int, ...] = (500,)
        self._random = random.Random()

    def add_next(self, n: int, status: int, code: int | None) -> None:
        with self._lock:
            self._next.extend([(status, code)] * n)

    def add_number(self, to_number: str, status: int, code: int | None) -> None:
        with self._lock:
            self._numbers[to_number] = (status, code)

    def set_rate(self, fraction: float, statuses: tuple[int, ...], seed: int | None) -> None:
        with self._lock:
            self._rate, self._rate_statuses = fraction, statuses
            self._random = random.Random(seed)

    def pick(self, to_number: str | None) -> tuple[int, int | None] | None:
        with self._lock:
            if to_number in self._numbers:
                return self._numbers[to_number]
            if self._next:
                return self._next.pop(0)
            if self._rate and self._random.random() < self._rate:
                return self._random.choice(self._rate_statuses), None
        return None


def _validation_fault(record: dict[str, Any]) -> tuple[int, int] | None:
    if not record["to"]:
        return 400, 21604
    if not (record["from_"] or record["messaging_service_sid"]):
        return 400, 21603
    if not record["body"]:
        return 400, 21602
    if len(record["body"]) > 1600:
        return 400, 21617
    return None


def error_payload(status: int, code: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": ERROR_MESSAGES.get(code, HTTPStatus(status).phrase),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _parse_time(text: str) -> float:
    """A DateSent filter: YYYY-MM-DD (the day's start, GMT) or the SDK's YYYY-MM-DDTHH:MM:SSZ."""
    shape = "%Y-%m-%dT%H:%M:%SZ" if "T" in text else "%Y-%m-%d"
    return datetime.strptime(text, shape).replace(tzinfo=UTC).timestamp()


def _message_resource(record: dict[str, Any]) -> dict[str, Any]:
    now = formatdate(record["at"], usegmt=True)
    sid, account_sid = record["sid"], record["account_sid"]
    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": record["body"],
        "date_created": now,
        "date_sent": now,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": record["from_"],
        "messaging_service_sid": record["messaging_service_sid"],
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # Twilio says "accepted" while a messaging service still has to pick the sender.
        "status": "queued" if record["from_"] else "accepted",
        "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
        "to": record["to"],
        "uri": uri,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[socketserver.BaseRequestHandler], fake: FakeTwilio
    ) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client hung up, or stop() cut a kept-alive connection: not news
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        """Close the listener and every kept-alive connection, so a stopped fake really is unreachable."""
        self.server_close()
        with self._open_lock:
            for sock in list(self._open):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 keep-alive loop: http.server's header parsing (the email package) cost more
    than everything else a request does, and the fake has to outrun the code it measures."""

    disable_nagle_algorithm = True
    timeout = 300  # an idle kept-alive connection is dropped after this
    server: _Server

    def handle(self) -> None:
        while True:
            request = self._read_request()
            if request is None:
                return
            method, target, headers, body = request
            path = target.split("?", 1)[0]
            if method == "GET" and (MEDIA_PATH.match(path) or CDN_PATH.match(path)):
                if not self._media(path, headers):
                    return
                continue
            status, payload, extra = self._route(method, target, headers, body)
            if not status:
                return
            self._reply(status, payload, extra)
            if headers.get("connection", "").lower() == "close":
                return

    def _read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        line = self.rfile.readline(65537)
        while line in (b"\r\n", b"\n"):  # tolerated stray line breaks between requests
            line = self.rfile.readline(65537)
        parts = line.decode("latin-1").split()
        if len(parts) != 3:
            return None  # connection closed, or not HTTP: drop it
        headers: dict[str, str] = {}
        while (header := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length") or 0))
        return parts[0], parts[1], headers, body

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, str]:
        fake = self.server.fake
        path = target.split("?", 1)[0]
        if path.startswith("/_fake/"):
            return _control(fake, method, path, body)
        match = MESSAGES_PATH.match(path)
        if method not in ("POST", "GET") or not match:
            return 404, error_payload(404, 20404), ""
        if not _authorized(headers.get("authorization", ""), match["account_sid"], fake.auth_token):
            return 401, error_payload(401, 20003), 'WWW-Authenticate: Basic realm="Twilio API"\r\n'
        if method == "GET":
            query = {key: values[0] for key, values in parse_qs(target.partition("?")[2]).items()}
            return 200, fake.list_messages(match["account_sid"], query), ""
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
        if fake._take_swallow(form):
            fake.hold_until_released()
            return 0, None, ""  # no answer: the connection is dropped
        if fake.latency:
            time.sleep(fake.latency)
        status, payload = fake.handle_message(match["account_sid"], form)
        if status == 201 and (stall := fake.take_stall()):
            time.sleep(stall)  # created, but the answer comes too late for the client
        return status, payload, ""

    def _media(self, path: str, headers: dict[str, str]) -> bool:
        """Answer a media request as Twilio does; False when the connection must close."""
        fake = self.server.fake
        record, media = fake.media_request(path, headers.get("authorization"))
        api = MEDIA_PATH.match(path)
        if api and not _authorized(headers.get("authorization", ""), api["account_sid"], fake.auth_token):
            record["status"] = 401
            self._reply(401, error_payload(401, 20003), 'WWW-Authenticate: Basic realm="Twilio API"\r\n')
            return True
        if media is None or media["status"] == 404:
            record["status"] = 404
            self._reply(404, error_payload(404, 20404), "")
            return True
        if media["status"] != 200:
            record["status"] = media["status"]
            self._reply(media["status"], error_payload(media["status"], DEFAULT_CODES.get(media["status"], 20500)), "")
            return True
        if api and media["redirect"]:
            record["status"] = 307
            location = f"/_cdn/{api['media_sid']}"
            self.wfile.write(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n"
                             .encode("ascii"))
            return True
        record["status"] = 200
        size = media["size"] if media["size"] is not None else len(media["body"])
        length = f"Content-Length: {size}\r\n" if media["declare_length"] else "Connection: close\r\n"
        self.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: {media['content_type']}\r\n{length}\r\n".encode("ascii"))
        if media["size"] is None:
            self.wfile.write(media["body"])
            record["bytes_sent"] = size
            return media["declare_length"]
        filler = b"\x00" * 65536
        try:
            while record["bytes_sent"] < size:
                piece = filler[:size - record["bytes_sent"]]
                self.wfile.write(piece)
                self.wfile.flush()
                record["bytes_sent"] += len(piece)
        except OSError:  # the client stopped reading and hung up
            return False
        return media["declare_length"]

    def _reply(self, status: int, payload: Any, extra: str) -> None:
        body = json.dumps(payload).encode("utf-8")
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
        )
        # One write per response: a separate header packet would meet the client's delayed ACK.
        self.wfile.write(head.encode("ascii") + body)


def _control(fake: FakeTwilio, method: str, path: str, body: bytes) -> tuple[int, Any, str]:
    if method == "GET" and path == "/_fake/stats":
        return 200, fake.stats(), ""
    if method == "GET" and path == "/_fake/messages":
        return 200, {"messages": fake.messages, "failures": fake.failures}, ""
    if method == "POST" and path == "/_fake/config":
        fake.configure(json.loads(body or b"{}"))
        return 200, fake.stats(), ""
    if method == "POST" and path == "/_fake/clear":
        fake.reset()
        return 200, fake.stats(), ""
    return 404, error_payload(404, 20404), ""


def _authorized(header: str, account_sid: str, auth_token: str | None) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        username, _, password = base64.b64decode(encoded).decode("utf-8").partition(":")
    except ValueError:
        return False
    return username == account_sid and bool(password) and auth_token in (None, password)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake Twilio REST API until SIGTERM or Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth-token", default=None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    fake = FakeTwilio(args.host, args.port, auth_token=args.auth_token)
    fake.latency = args.latency
    if args.fail_rate:
        fake.fail_rate(args.fail_rate, seed=args.seed)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with fake:
        print(fake.base_url, flush=True)
        while not stop.wait(0.5):
            pass
    print(json.dumps(fake.stats()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
