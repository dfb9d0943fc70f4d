"""Photos patients send (MMS): recorded with the inbound SMS, fetched from Twilio after the webhook has answered,
stored under the media folder, and shown to staff through signed, expiring links.

Flow: the webhook records one MediaFile per MediaUrlN (status "pending", or "refused" when the URL is not on
Twilio's API host: we never fetch an address a request hands us) in the inbound SMS's own transaction; after
that commits it queues the Celery task `tasks.media.fetch`. The dispatcher tick sweeps pending media too, so a
lost task never loses a photo. A fetch first claims the row (attempts + 1, committed), then downloads with no
transaction open, then records the outcome: "stored", "refused" (not an image, too big) or, after
MAX_ATTEMPTS transient failures, "failed". Errors recorded here never carry personal data.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import urllib3
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aftercare.channels.twilio_sms import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, build_client
from aftercare.config import Settings, get_settings
from aftercare.db import session_factory
from aftercare.models import InboundMessage, MediaFile, utcnow

log = logging.getLogger(__name__)

MAX_MEDIA = 10  # Twilio sends at most 10 MediaUrlN per message
MAX_ATTEMPTS = 4  # transient failures (Twilio down, timeouts) are retried this often, then the photo is "failed"
# A pending photo is swept once its task has had this long, doubled per attempt already made (30 s, 1, 2, 4 min).
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_LIMIT = 5  # photos fetched per dispatcher tick at most: pages must not wait behind photos
MAX_REDIRECTS = 3
DOWNLOAD_SECONDS = 60.0  # a body trickling in slower than this is dropped (and retried later)
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})

PENDING, STORED, REFUSED, FAILED = "pending", "stored", "refused", "failed"

# What the bytes say, whatever the Content-Type header claims: (content type, file extension).
_HEIC_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"hevc": "image/heic", b"hevx": "image/heic",
                b"heim": "image/heic", b"heis": "image/heic", b"mif1": "image/heif", b"msf1": "image/heif"}
_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
               "image/heic": ".heic", "image/heif": ".heif"}


def sniff_image(head: bytes) -> str | None:
    """The image type the first bytes of a file show (JPEG, PNG, GIF, WEBP, HEIC/HEIF), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _HEIC_BRANDS.get(head[8:12])
    return None


# -- recording (the webhook's transaction) ------------------------------------------------------------------------

def media_from_params(params: Mapping[str, str], num_media: int) -> list[tuple[str, str | None]]:
    """Twilio's MediaUrl0..N-1 with MediaContentType0..N-1 (N = NumMedia, at most MAX_MEDIA): [(url, type)]."""
    found = []
    for n in range(min(num_media, MAX_MEDIA)):
        url = params.get(f"MediaUrl{n}", "").strip()
        if url:
            found.append((url, params.get(f"MediaContentType{n}") or None))
    return found


def is_twilio_media_url(url: str, settings: Settings | None = None) -> bool:
    """True only for a URL on Twilio's API host (settings.twilio_api_base_url: same scheme, host and port), with
    no credentials in it, under /2010-04-01/Accounts/ (our own account's when one is configured). https unless the
    API base is on loopback (the tests' fake). Anything else is never fetched: that would be SSRF."""
    settings = settings or get_settings()
    try:
        base, parts = urlsplit(settings.twilio_api_base_url), urlsplit(url)
        same_origin = (parts.scheme, parts.hostname, parts.port) == (base.scheme, base.hostname, base.port)
    except ValueError:  # a malformed port
        return False
    if not same_origin or parts.username or parts.password or "\\" in url or len(url) > 500:
        return False
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        return False
    prefix = "/2010-04-01/Accounts/" + (f"{settings.twilio_account_sid}/" if settings.twilio_account_sid else "")
    return parts.path.startswith(prefix) and ".." not in parts.path


def record_media(session: Session, inbound_id: int, media: Iterable[tuple[str, str | None]],
                 settings: Settings | None = None) -> list[MediaFile]:
    """One MediaFile per (url, declared content type), in order: "pending" for Twilio's media URLs, "refused" at
    once for any other address or a declared type that is not an image. The caller commits."""
    settings = settings or get_settings()
    rows = []
    for position, (url, declared) in enumerate(list(media)[:MAX_MEDIA]):
        row = MediaFile(inbound_id=inbound_id, position=position, provider_url=url[:500],
                        content_type=(declared or None) and declared[:100], status=PENDING, attempts=0)
        if not is_twilio_media_url(url, settings):
            row.status, row.error = REFUSED, "not a Twilio media URL"
        elif declared and not declared.lower().startswith("image/"):
            row.status, row.error = REFUSED, "not an image (declared type)"
        rows.append(row)
    session.add_all(rows)
    return rows


def queue_fetch(provider_sid: str) -> None:
    """Ask a worker to fetch this message's pending photos (call after the webhook's transaction committed).
    A broker that is down loses nothing: the dispatcher tick sweeps pending photos."""
    try:
        from tasks.media import fetch  # the web process needs the Celery app only here

        fetch.apply_async((provider_sid,), retry=False)
    except Exception as exc:  # noqa: BLE001 - the photo is safe in the database; the sweep will fetch it
        log.warning("photo fetch not queued (%s); the dispatcher sweep will fetch it", type(exc).__name__)


# -- fetching (a worker, after the webhook answered) --------------------------------------------------------------

def pending_media_ids(session: Session, *, provider_sid: str | None = None, due_at: datetime | None = None,
                      limit: int = 100) -> list[int]:
    """Pending photos: of one message (its Twilio SID), or every one whose sweep time has come by `due_at`
    (SWEEP_AFTER after it was recorded, doubled per attempt made), oldest first."""
    query = select(MediaFile.id, MediaFile.created_at, MediaFile.attempts).where(MediaFile.status == PENDING)
    if provider_sid is not None:
        query = query.join(InboundMessage, InboundMessage.id == MediaFile.inbound_id).where(
            InboundMessage.provider_sid == provider_sid)
    rows = session.execute(query.order_by(MediaFile.id).limit(limit)).all()
    if due_at is None:
        return [row.id for row in rows]
    return [row.id for row in rows if row.created_at <= due_at - SWEEP_AFTER * 2 ** min(row.attempts, 8)]


def fetch_for_message(provider_sid: str, *, settings: Settings | None = None) -> Counter:
    """The Celery task's body: fetch the pending photos of the inbound message with this Twilio SID."""
    with session_factory()() as session:
        ids = pending_media_ids(session, provider_sid=provider_sid)
    return fetch_media(ids, settings=settings)


def sweep_pending_media(*, settings: Settings | None = None, now: datetime | None = None,
                        limit: int = SWEEP_LIMIT) -> Counter:
    """The dispatcher tick's safety net: fetch pending photos whose task was lost or whose last try failed."""
    with session_factory()() as session:
        ids = pending_media_ids(session, due_at=now or utcnow(), limit=100)[:limit]
    return fetch_media(ids, settings=settings) if ids else Counter()


def fetch_media(media_ids: Iterable[int], *, settings: Settings | None = None) -> Counter:
    """Fetch and store each pending MediaFile of `media_ids`. Returns how many ended stored, refused, failed, or
    were left pending for a retry ("retry"); a photo another process has just claimed is skipped ("skipped")."""
    settings = settings or get_settings()
    counts: Counter = Counter()
    fetcher: _Fetcher | None = None
    for media_id in media_ids:
        claimed = _claim(media_id)
        if claimed is None:
            counts["skipped"] += 1
            continue
        url, inbound_id, attempts = claimed
        fetcher = fetcher or _Fetcher(settings)
        outcome = fetcher.fetch(url, inbound_id)
        counts[_record(media_id, outcome, attempts)] += 1
    return counts


@dataclass
class _Outcome:
    status: str  # stored, refused, or "retry" (transient: failed once attempts run out)
    error: str | None = None
    content_type: str | None = None
    size_bytes: int | None = None
    path: str | None = None


class _Refused(Exception):
    """Permanent: not an image, too big, not Twilio's."""


class _Failed(Exception):
    """The download did not work; `transient` ones are retried."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def _claim(media_id: int) -> tuple[str, int, int] | None:
    """Take a pending photo for this process by counting the attempt (committed before any download, so a worker
    that dies mid-fetch still uses up an attempt). (url, inbound_id, attempts now) or None if not ours."""
    with session_factory()() as session:
        row = session.execute(select(MediaFile.provider_url, MediaFile.inbound_id, MediaFile.attempts)
                              .where(MediaFile.id == media_id, MediaFile.status == PENDING)).first()
        if row is None:
            return None
        if row.attempts >= MAX_ATTEMPTS:  # the last attempt died with its worker
            session.execute(update(MediaFile).where(MediaFile.id == media_id, MediaFile.status == PENDING)
                            .values(status=FAILED, error=f"gave up after {row.attempts} attempts"))
            session.commit()
            return None
        claimed = session.execute(update(MediaFile).where(
            MediaFile.id == media_id, MediaFile.status == PENDING, MediaFile.attempts == row.attempts)
            .values(attempts=row.attempts + 1)).rowcount
        session.commit()
    return (row.provider_url, row.inbound_id, row.attempts + 1) if claimed == 1 else None


def _record(media_id: int, outcome: _Outcome, attempts: int) -> str:
    status = outcome.status
    if status == "retry" and attempts >= MAX_ATTEMPTS:
        status = FAILED
    values = {"status": PENDING if status == "retry" else status, "error": outcome.error}
    if outcome.status == STORED:
        values.update(content_type=outcome.content_type, size_bytes=outcome.size_bytes, path=outcome.path,
                      stored_at=utcnow(), error=None)
    elif outcome.size_bytes is not None:
        values.update(size_bytes=outcome.size_bytes)
    with session_factory()() as session:
        session.execute(update(MediaFile).where(MediaFile.id == media_id).values(**values))
        session.commit()
    log.info("media %s: %s%s", media_id, status, f" ({outcome.error})" if outcome.error else "")
    return status


class _Fetcher:
    """Downloads with the account's credentials over the Twilio client's own transport (pool, proxy, CA bundle).

    The SDK's HttpClient.request() decodes every answer as UTF-8 text and reads it whole, so photos go through the
    urllib3 pool underneath it (twilio_sms.PooledHttpClient.pool), streamed, with the same timeouts.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.has_credentials = bool(settings.twilio_account_sid and settings.twilio_auth_token)
        if self.has_credentials:  # the SDK refuses to build a client without them
            client = build_client(settings)
            self.pool = client.http_client.pool
            self.auth = urllib3.make_headers(basic_auth=f"{client.username}:{client.password}")

    def fetch(self, url: str, inbound_id: int) -> _Outcome:
        try:
            if not is_twilio_media_url(url, self.settings):
                raise _Refused("not a Twilio media URL")
            if not self.has_credentials:
                raise _Failed("no Twilio credentials configured", transient=False)
            body = self._download(url)
            kind = sniff_image(body[:32])
            if kind is None:
                raise _Refused("not an image")
            path = _store(self.settings.effective_media_dir, inbound_id, body, _EXTENSIONS[kind])
            return _Outcome(STORED, content_type=kind, size_bytes=len(body), path=path)
        except _Refused as exc:
            return _Outcome(REFUSED, error=str(exc))
        except _Failed as exc:
            return _Outcome("retry" if exc.transient else FAILED, error=str(exc))

    def _download(self, url: str) -> bytes:
        """The body at a Twilio media URL, following Twilio's redirect (to its CDN's pre-signed address, which
        gets no credentials). Stops reading past settings.media_max_bytes."""
        headers = dict(self.auth)
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                answer = self.pool.request("GET", url, headers=headers, redirect=False, preload_content=False,
                                           retries=False, timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_SECONDS,
                                                                                  read=READ_TIMEOUT_SECONDS))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise _Failed(f"twilio unreachable: {type(exc).__name__}") from None
            try:
                if answer.status in _REDIRECTS:
                    answer.drain_conn()
                    url = self._redirect_target(url, answer.headers.get("Location", ""))
                    headers = {}  # the credentials are for Twilio's API only
                    continue
                return self._body(answer)
            finally:
                if not answer.closed and answer.status not in _REDIRECTS and answer.status != 200:
                    answer.close()  # an error's body is not read: the connection cannot be reused
                answer.release_conn()
        raise _Failed("too many redirects", transient=False)

    def _redirect_target(self, url: str, location: str) -> str:
        target = urljoin(url, location)
        parts = urlsplit(target)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK
                                             and urlsplit(self.settings.twilio_api_base_url).scheme == "http")
        if not location or not secure:
            raise _Refused("redirected to a non-https address")
        return target

    def _body(self, answer: urllib3.BaseHTTPResponse) -> bytes:
        if answer.status == 404:
            raise _Failed("twilio answered HTTP 404 (media deleted?)", transient=False)
        if answer.status != 200:
            raise _Failed(f"twilio answered HTTP {answer.status}")
        limit = self.settings.media_max_bytes
        declared = answer.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            answer.close()  # never read it; the connection is not reused
            raise _Refused(f"over the size limit ({limit} bytes)")
        chunks, size, deadline = [], 0, time.monotonic() + DOWNLOAD_SECONDS
        try:
            for chunk in answer.stream(_CHUNK, decode_content=False):  # no gzip bomb: bytes as sent
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    answer.close()
                    raise _Refused(f"over the size limit ({limit} bytes)")
                if time.monotonic() > deadline:
                    answer.close()
                    raise _Failed("download too slow")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Failed(f"download broke off: {type(exc).__name__}") from None
        return b"".join(chunks)


def _store(media_dir: Path, inbound_id: int, body: bytes, extension: str) -> str:
    """Write `body` to MEDIA_DIR/<inbound id>/<random name><ext> (folders 0700, file 0600); the path relative to
    the media folder. No patient data in the path."""
    folder = media_dir / str(inbound_id)
    for directory in (media_dir, folder):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is cut by the umask, and an existing folder keeps its own
    name = secrets.token_hex(16) + extension
    descriptor = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(body)
    return f"{inbound_id}/{name}"


# -- showing (staff pages, CLI) ------------------------------------------------------------------------------------

def stored_media(session: Session, inbound_ids: Iterable[int]) -> dict[int, list[MediaFile]]:
    """The stored photos of each inbound message, in the order sent: {inbound_id: [MediaFile]}."""
    ids = list(dict.fromkeys(inbound_ids))
    found: dict[int, list[MediaFile]] = {inbound_id: [] for inbound_id in ids}
    if ids:
        rows = session.scalars(select(MediaFile).where(MediaFile.inbound_id.in_(ids), MediaFile.status == STORED)
                               .order_by(MediaFile.inbound_id, MediaFile.position))
        for row in rows:
            found[row.inbound_id].append(row)
    return found


def photo_urls(session: Session, inbound_ids: Iterable[int], *,
               settings: Settings | None = None) -> dict[int, list[str]]:
    """{inbound_id: [signed URL of each stored photo]} (every id asked for, [] when none): absolute addresses on
    AFTERCARE_PUBLIC_URL, each valid AFTERCARE_PAGE_LINK_HOURS, served by GET /media/<token>."""
    from aftercare.staff.signing import sign  # aftercare.staff imports this module (the /media route)

    settings = settings or get_settings()
    base = settings.public_url.rstrip("/")
    return {inbound_id: [f"{base}/media/{sign('media', row.id, settings=settings)}" for row in rows]
            for inbound_id, rows in stored_media(session, inbound_ids).items()}


def photo_counts(session: Session, inbound_ids: Iterable[int]) -> dict[int, int]:
    """{inbound_id: how many stored photos} for every id asked for."""
    ids = list(dict.fromkeys(inbound_ids))
    counts = dict.fromkeys(ids, 0)
    if ids:
        query = (select(MediaFile.inbound_id, func.count()).where(MediaFile.inbound_id.in_(ids),
                                                                  MediaFile.status == STORED)
                 .group_by(MediaFile.inbound_id))
        counts.update({inbound_id: n for inbound_id, n in session.execute(query)})
    return counts


def media_file_path(row: MediaFile, settings: Settings | None = None) -> Path | None:
    """The stored file of a photo, or None when it is not stored or its path would leave the media folder."""
    settings = settings or get_settings()
    if row.status != STORED or not row.path:
        return None
    root = settings.effective_media_dir.resolve()
    path = (root / row.path).resolve()
    return path if path.is_relative_to(root) and path.is_file() else None
