"""Photo replies (MMS): the webhook records them, a worker fetches them from the fake Twilio API with the real SDK's
transport and the account's credentials, only images within the size limit are stored, and staff see them through
signed, expiring links."""

from __future__ import annotations

import base64
import os
import stat
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select, update

from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.inbound.handling import handle_inbound_sms
from aftercare.inbound.media import (
    MAX_ATTEMPTS,
    fetch_for_message,
    fetch_media,
    is_twilio_media_url,
    photo_urls,
    sniff_image,
)
from aftercare.models import InboundMessage, MediaFile
from aftercare.schedule.tick import dispatch_once
from aftercare.staff.signing import sign
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli
from tests.conftest import configure
from tests.fakes.twilio_api import TINY_JPEG, TINY_PNG, FakeTwilio
from tests.processes import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM, service_env, start_worker, stop, wait_until
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"
LIMIT = 100_000  # AFTERCARE_MEDIA_MAX_BYTES in these tests


@pytest.fixture
def fake_twilio():
    with FakeTwilio(auth_token=AUTH_TOKEN) as fake:
        yield fake


def _setup(monkeypatch, fake: FakeTwilio, **extra) -> None:
    configure(monkeypatch, sms_channel="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
              twilio_from=TWILIO_FROM, twilio_api_base_url=fake.base_url, public_url=PUBLIC_URL,
              media_max_bytes=LIMIT, **extra)
    add_clinic(quiet_hours="00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treated_at=treated)


@pytest.fixture
def web(env, monkeypatch, fake_twilio):
    _setup(monkeypatch, fake_twilio)
    with serve_app() as client:
        yield client


@pytest.fixture
def web_any(any_env, monkeypatch, fake_twilio):
    _setup(monkeypatch, fake_twilio)
    with serve_app() as client:
        yield client


def _mms(web, urls: list[str], *, body: str = "", types: list[str] | None = None, sid: str | None = None,
         num_media: int | None = None) -> tuple[str, requests.Response]:
    sid = sid or "MM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "From": PATIENT, "To": TWILIO_FROM, "Body": body, "AccountSid": ACCOUNT_SID,
              "NumMedia": str(len(urls) if num_media is None else num_media)}
    for n, url in enumerate(urls):
        params[f"MediaUrl{n}"] = url
        params[f"MediaContentType{n}"] = (types or [])[n] if types else "image/jpeg"
    return sid, web.signed_post("/twilio/sms", params)


def _media(sid: str) -> list[MediaFile]:
    with session_scope() as session:
        return list(session.scalars(select(MediaFile).join(InboundMessage, InboundMessage.id == MediaFile.inbound_id)
                                    .where(InboundMessage.provider_sid == sid).order_by(MediaFile.position)))


def _age(media_ids: list[int], by: timedelta, **values) -> None:
    """Make photos look recorded `by` earlier (and set other columns), as if time had passed."""
    with session_scope() as session:
        for row in session.scalars(select(MediaFile).where(MediaFile.id.in_(media_ids))):
            row.created_at -= by
            for key, value in values.items():
                setattr(row, key, value)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_an_mms_is_recorded_pending_then_fetched_and_stored_as_private_files(web_any, fake_twilio):
    urls = [fake_twilio.add_media(ACCOUNT_SID, TINY_JPEG, content_type="image/jpeg"),
            fake_twilio.add_media(ACCOUNT_SID, TINY_PNG, content_type="image/png")]
    sid, answer = _mms(web_any, urls, body="is this bruise normal?", types=["image/jpeg", "image/png"])
    assert answer.status_code == 200
    # The webhook answered without downloading anything: both photos wait for a worker.
    assert fake_twilio.media_requests == []
    assert [(m.position, m.status, m.provider_url) for m in _media(sid)] == [(0, "pending", urls[0]),
                                                                             (1, "pending", urls[1])]

    assert fetch_for_message(sid) == {"stored": 2}
    jpeg, png = _media(sid)
    assert (jpeg.status, jpeg.content_type, jpeg.size_bytes, jpeg.attempts) == ("stored", "image/jpeg",
                                                                                len(TINY_JPEG), 1)
    assert (png.status, png.content_type, png.size_bytes) == ("stored", "image/png", len(TINY_PNG))
    media_dir = get_settings().effective_media_dir
    for row, content in ((jpeg, TINY_JPEG), (png, TINY_PNG)):
        path = media_dir / row.path
        assert path.read_bytes() == content
        assert row.path.split("/")[0] == str(row.inbound_id)  # a folder per inbound message, a random name
        assert PATIENT not in row.path and PATIENT.lstrip("+") not in row.path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(media_dir.stat().st_mode) == 0o700
    # Twilio's API got the account's credentials; its CDN redirect target got none.
    api = [r for r in fake_twilio.media_requests if r["path"].startswith("/2010-04-01/")]
    cdn = [r for r in fake_twilio.media_requests if r["path"].startswith("/_cdn/")]
    assert [r["status"] for r in api] == [307, 307] and [r["status"] for r in cdn] == [200, 200]
    assert all(r["authorization"] == _basic(ACCOUNT_SID, AUTH_TOKEN) for r in api)
    assert all(r["authorization"] is None for r in cdn)
    # Fetching again does nothing: stored photos are not fetched twice.
    assert fetch_for_message(sid) == {}
    assert len(fake_twilio.media_requests) == 4


def test_the_webhook_queues_a_celery_task_that_a_real_worker_runs(web, fake_twilio, tmp_path):
    from tasks.app import app

    if "data_folder_in" not in app.conf.broker_transport_options:
        pytest.skip("this process's Celery app was built for another broker")
    # The web app sends to the embedded broker its Celery app was built with; a worker reads the same folder.
    home = Path(app.conf.broker_transport_options["data_folder_in"]).parent
    settings = get_settings()
    sid, answer = _mms(web, [fake_twilio.add_media(ACCOUNT_SID, TINY_JPEG, content_type="image/jpeg")])
    assert answer.status_code == 200 and _media(sid)[0].status == "pending"
    worker = start_worker(service_env(database_url=settings.database_url, broker_url="", home=home,
                                      twilio_url=fake_twilio.base_url, media_dir=settings.effective_media_dir,
                                      media_max_bytes=LIMIT), concurrency=1, log=tmp_path / "worker.log")
    try:
        assert wait_until(lambda: _media(sid)[0].status == "stored", timeout=60), (tmp_path / "worker.log").read_text()
    finally:
        stop(worker)
    assert (settings.effective_media_dir / _media(sid)[0].path).read_bytes() == TINY_JPEG


def test_media_served_directly_without_a_redirect_is_stored_too(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID, TINY_PNG, redirect=False, declare_length=False)
    sid, _ = _mms(web, [url])
    assert fetch_for_message(sid) == {"stored": 1}
    assert _media(sid)[0].size_bytes == len(TINY_PNG)


@pytest.mark.parametrize(("content", "declared"), [
    (b"<html><script>alert(1)</script></html>", "image/jpeg"),  # the header lies: the bytes decide
    (b"%PDF-1.7\n" + b"0" * 200, "image/png"),
    (b"BEGIN:VCARD\nVERSION:3.0\nEND:VCARD\n", "image/gif"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt ", "image/webp"),  # RIFF, but not a WEBP
])
def test_anything_that_is_not_an_image_is_refused_and_not_kept(web, fake_twilio, content, declared):
    url = fake_twilio.add_media(ACCOUNT_SID, content, content_type=declared)
    sid, _ = _mms(web, [url], types=[declared])
    assert fetch_for_message(sid) == {"refused": 1}
    [row] = _media(sid)
    assert (row.status, row.error, row.path) == ("refused", "not an image", None)
    media_dir = get_settings().effective_media_dir
    assert not media_dir.exists() or not any(p.is_file() for p in media_dir.rglob("*"))


def test_a_declared_non_image_type_is_refused_without_fetching(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID, b"BEGIN:VCARD", content_type="text/vcard")
    sid, _ = _mms(web, [url], types=["text/vcard"])
    [row] = _media(sid)
    assert (row.status, row.error) == ("refused", "not an image (declared type)")
    assert fetch_for_message(sid) == {} and fake_twilio.media_requests == []


@pytest.mark.parametrize("declare_length", [True, False])
def test_an_oversized_photo_is_refused_without_reading_it_all(web, fake_twilio, declare_length):
    size = 64 * 1024 * 1024
    url = fake_twilio.add_media(ACCOUNT_SID, size=size, declare_length=declare_length)
    sid, _ = _mms(web, [url])
    started = time.monotonic()
    assert fetch_for_message(sid) == {"refused": 1}
    assert time.monotonic() - started < 10
    [row] = _media(sid)
    assert (row.status, row.error, row.path) == ("refused", f"over the size limit ({LIMIT} bytes)", None)
    # The fake wrote what fitted in the socket buffers before we hung up, far from the whole body.
    deadline = time.monotonic() + 5
    while fake_twilio.media_requests[-1]["bytes_sent"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_twilio.media_requests[-1]["bytes_sent"] < size // 2


def test_a_photo_just_within_the_limit_is_stored(web, fake_twilio):
    photo = TINY_PNG + b"\x00" * (LIMIT - len(TINY_PNG))  # trailing bytes after IEND: still a PNG
    sid, _ = _mms(web, [fake_twilio.add_media(ACCOUNT_SID, photo)])
    assert fetch_for_message(sid) == {"stored": 1}
    assert _media(sid)[0].size_bytes == LIMIT


@pytest.mark.parametrize("make_url", [
    lambda base: "http://169.254.169.254/2010-04-01/Accounts/{sid}/Messages/MM1/Media/ME1",  # cloud metadata
    lambda base: "https://evil.example.com/2010-04-01/Accounts/{sid}/Messages/MM1/Media/ME1",
    lambda base: base.replace("127.0.0.1", "localhost") + "/2010-04-01/Accounts/{sid}/Messages/MM1/Media/ME1",
    lambda base: base.replace("http://", "https://") + "/2010-04-01/Accounts/{sid}/Messages/MM1/Media/ME1",
    lambda base: base + "/2010-04-01/Accounts/ACsomeoneelse/Messages/MM1/Media/ME1",  # another account's
    lambda base: base + "/_fake/stats",
    lambda base: base.replace("http://", "http://user:pw@") + "/2010-04-01/Accounts/{sid}/Messages/MM1/Media/ME1",
    lambda base: "file:///etc/passwd",
])
def test_a_media_url_not_on_twilios_api_host_is_refused_and_never_fetched(web, fake_twilio, make_url):
    url = make_url(fake_twilio.base_url).replace("{sid}", ACCOUNT_SID)
    good_url = fake_twilio.add_media(ACCOUNT_SID)
    sid, answer = _mms(web, [url, good_url])
    assert answer.status_code == 200
    bad, good = _media(sid)
    assert (bad.status, bad.error) == ("refused", "not a Twilio media URL")
    assert good.status == "pending"
    assert fetch_for_message(sid) == {"stored": 1}
    media_sid = good_url.rsplit("/", 1)[1]
    assert [r["path"].endswith(media_sid) for r in fake_twilio.media_requests] == [True, True]


def test_twilio_media_urls_are_recognised_in_production_shape(monkeypatch, env):
    configure(monkeypatch, twilio_account_sid=ACCOUNT_SID)
    good = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM1/Media/ME1"
    assert is_twilio_media_url(good)
    for bad in (good.replace("https://", "http://"), good.replace("api.twilio.com", "api.twilio.com.evil.org"),
                good.replace("api.twilio.com", "api.twilio.com:8443"), good.replace("/Media/ME1", "/../../x"),
                "https://api.twilio.com@evil.org/2010-04-01/Accounts/", good + "/" + "x" * 500):
        assert not is_twilio_media_url(bad), bad


@pytest.mark.parametrize(("head", "kind"), [
    (TINY_JPEG, "image/jpeg"), (TINY_PNG, "image/png"), (b"GIF89a\x01\x00", "image/gif"),
    (b"GIF87a\x01\x00", "image/gif"), (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"), (b"\x00\x00\x00\x18ftypmif1", "image/heif"),
    (b"\x00\x00\x00\x18ftypisom", None), (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None), (b"", None),
])
def test_images_are_known_by_their_magic_numbers(head, kind):
    assert sniff_image(head) == kind


def test_transient_failures_are_retried_then_left_failed(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID, status=503)
    sid, _ = _mms(web, [url])
    for attempt in range(1, MAX_ATTEMPTS):
        assert fetch_for_message(sid) == {"retry": 1}
        [row] = _media(sid)
        assert (row.status, row.attempts, row.error) == ("pending", attempt, "twilio answered HTTP 503")
    assert fetch_for_message(sid) == {"failed": 1}
    [row] = _media(sid)
    assert (row.status, row.attempts) == ("failed", MAX_ATTEMPTS)
    assert fetch_for_message(sid) == {}


def test_deleted_media_fails_at_once(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID, status=404)
    sid, _ = _mms(web, [url])
    assert fetch_for_message(sid) == {"failed": 1}
    assert _media(sid)[0].error == "twilio answered HTTP 404 (media deleted?)"


def test_wrong_credentials_are_retried_and_the_error_names_no_secret(web, fake_twilio, monkeypatch):
    url = fake_twilio.add_media(ACCOUNT_SID)
    sid, _ = _mms(web, [url])
    configure(monkeypatch, twilio_auth_token="wrong" * 6)
    assert fetch_for_message(sid) == {"retry": 1}
    [row] = _media(sid)
    assert row.error == "twilio answered HTTP 401" and "wrong" not in row.error


def test_an_unreachable_twilio_is_a_transient_failure(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID)
    sid, _ = _mms(web, [url])
    fake_twilio.stop()
    assert fetch_for_message(sid) == {"retry": 1}
    assert _media(sid)[0].error.startswith("twilio unreachable: ")


def test_the_dispatcher_sweep_fetches_photos_whose_task_was_lost(web_any, fake_twilio):
    # No worker runs here: whatever the webhook queued is lost. The tick's sweep is the safety net.
    sid, _ = _mms(web_any, [fake_twilio.add_media(ACCOUNT_SID), fake_twilio.add_media(ACCOUNT_SID, TINY_JPEG)])
    dispatch_once()
    assert [m.status for m in _media(sid)] == ["pending", "pending"]  # its task still has its chance
    _age([m.id for m in _media(sid)], timedelta(minutes=1))
    dispatch_once()
    assert [(m.status, m.attempts) for m in _media(sid)] == [("stored", 1), ("stored", 1)]


def test_the_sweep_retries_a_failed_try_later_and_finishes_a_claim_a_dead_worker_left(web, fake_twilio):
    sid, _ = _mms(web, [fake_twilio.add_media(ACCOUNT_SID), fake_twilio.add_media(ACCOUNT_SID)])
    # One try already failed; a worker died during the last allowed attempt of the other.
    first, second = (m.id for m in _media(sid))
    _age([first], timedelta(seconds=45), attempts=1)
    _age([second], timedelta(hours=1), attempts=MAX_ATTEMPTS)
    dispatch_once()
    assert _media(sid)[0].status == "pending"  # 45 s: the retry after one failure waits a minute
    _age([first], timedelta(seconds=30))
    dispatch_once()
    done, dead = _media(sid)
    assert (done.status, done.attempts) == ("stored", 2)
    assert (dead.status, dead.error) == ("failed", f"gave up after {MAX_ATTEMPTS} attempts")


def test_photo_links_serve_the_file_and_an_altered_or_expired_token_gets_403(web_any, fake_twilio, monkeypatch):
    sid, _ = _mms(web_any, [fake_twilio.add_media(ACCOUNT_SID, TINY_JPEG, content_type="image/jpeg"),
                            fake_twilio.add_media(ACCOUNT_SID, TINY_PNG)])
    fetch_for_message(sid)
    with session_scope() as session:
        inbound_id = session.scalar(select(InboundMessage.id).where(InboundMessage.provider_sid == sid))
        urls = photo_urls(session, [inbound_id, 999])
    assert urls[999] == [] and len(urls[inbound_id]) == 2
    for url, content, kind in zip(urls[inbound_id], (TINY_JPEG, TINY_PNG), ("image/jpeg", "image/png"), strict=True):
        assert url.startswith(PUBLIC_URL + "/media/")
        got = requests.get(web_any.base + urlsplit(url).path, timeout=10)
        assert got.status_code == 200 and got.content == content
        assert got.headers["Content-Type"] == kind
        assert got.headers["Cache-Control"] == "no-store"
        assert got.headers["X-Content-Type-Options"] == "nosniff"
    token = urlsplit(urls[inbound_id][0]).path.rsplit("/", 1)[1]
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad in (altered, sign("escalation", {"e": 1, "s": None}), sign("media", "1"), "nonsense"):
        got = requests.get(f"{web_any.base}/media/{bad}", timeout=10)
        assert got.status_code == 403 and TINY_JPEG not in got.content
    # Past AFTERCARE_PAGE_LINK_HOURS the same link is refused.
    configure(monkeypatch, page_link_hours=0.0001)
    time.sleep(1.1)  # itsdangerous counts whole seconds
    assert requests.get(web_any.base + urlsplit(urls[inbound_id][0]).path, timeout=10).status_code == 403


def test_a_link_to_a_photo_that_was_refused_or_is_gone_is_404(web, fake_twilio):
    sid, _ = _mms(web, [fake_twilio.add_media(ACCOUNT_SID, b"not an image"), fake_twilio.add_media(ACCOUNT_SID)])
    fetch_for_message(sid)
    refused, stored = _media(sid)
    assert requests.get(f"{web.base}/media/{sign('media', refused.id)}", timeout=10).status_code == 404
    os.remove(get_settings().effective_media_dir / stored.path)
    assert requests.get(f"{web.base}/media/{sign('media', stored.id)}", timeout=10).status_code == 404


def test_a_tampered_path_never_serves_a_file_outside_the_media_folder(web, fake_twilio, tmp_path):
    secret = tmp_path / "outside.png"
    secret.write_bytes(TINY_PNG)
    sid, _ = _mms(web, [fake_twilio.add_media(ACCOUNT_SID)])
    fetch_for_message(sid)
    [row] = _media(sid)
    with session_scope() as session:
        session.execute(update(MediaFile).where(MediaFile.id == row.id).values(path=str(Path("..") / ".." /
                                                                                         secret.name)))
    assert requests.get(f"{web.base}/media/{sign('media', row.id)}", timeout=10).status_code == 404


def test_a_photo_only_message_is_reviewed_never_reassured_and_the_inbox_counts_its_photos(web_any, fake_twilio):
    sid, answer = _mms(web_any, [fake_twilio.add_media(ACCOUNT_SID), fake_twilio.add_media(ACCOUNT_SID, b"x")])
    text = answer.text.lower()
    assert "nurse will read" in text and "normal" not in text and "glad" not in text and "well" not in text
    [item] = cli_json("inbox")
    assert (item["reason"], item["num_media"], item["photos"]) == ("photo", 2, 0)
    fetch_for_message(sid)
    [item] = cli_json("inbox")
    assert item["photos"] == 1  # the second one was no image


def test_escalations_show_lists_each_replys_photo_links(web, fake_twilio):
    sid, answer = _mms(web, [fake_twilio.add_media(ACCOUNT_SID)], body="my lip has gone white and it really hurts")
    assert answer.status_code == 200
    fetch_for_message(sid)
    escalation_id = cli_json("escalations", "list", "--open")[0]["id"]
    [reply] = cli_json("escalations", "show", str(escalation_id))["replies"]
    [url] = reply["photos"]
    got = requests.get(web.base + urlsplit(url).path, timeout=10)
    assert got.status_code == 200 and got.content == TINY_PNG


def test_a_retried_webhook_records_its_photos_once(web, fake_twilio):
    url = fake_twilio.add_media(ACCOUNT_SID)
    sid, _ = _mms(web, [url])
    _mms(web, [url], sid=sid)
    assert len(_media(sid)) == 1


def test_num_media_caps_the_urls_read_at_ten(web, fake_twilio):
    urls = [fake_twilio.add_media(ACCOUNT_SID) for _ in range(12)]
    sid, _ = _mms(web, urls, num_media=12)
    assert len(_media(sid)) == 10
    sid, _ = _mms(web, urls[:3], num_media=1)  # NumMedia decides how many URLs are read
    assert len(_media(sid)) == 1


def test_console_and_cli_replies_have_no_urls_and_nothing_to_fetch(any_env):
    add_clinic(quiet_hours="00:00-00:00")
    enroll(phone=PATIENT, treated_at=(datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat())
    result = run_cli("reply", "--from", PATIENT, "--media", "2", "--json")
    assert result.exit_code == 0
    with session_scope() as session:
        outcome = handle_inbound_sms(session, sid="LOCAL1", from_number=PATIENT, to_number=None, body="", num_media=1)
        assert session.scalars(select(MediaFile)).all() == []
    assert outcome.review_id is not None and fetch_media([]) == {}
    dispatch_once()  # the sweep finds nothing and breaks nothing


def test_compose_gives_web_and_worker_the_same_media_volume():
    import yaml

    from tests.conftest import ROOT

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    folder = compose["services"]["web"]["environment"]["AFTERCARE_MEDIA_DIR"]
    for name in ("web", "worker"):
        assert f"media:{folder}" in compose["services"][name]["volumes"]
    assert "media" in compose["volumes"]
