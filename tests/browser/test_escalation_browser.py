"""End to end in a real headless browser (Debian's chromium, 390 px wide): a patient's MMS reply with a photo raises
an emergency through the signed webhook, `dispatch --once` pages the on-call clinician at the fake Twilio, the
browser opens the link from that SMS, sees the patient's words and photo, presses Acknowledge, and no re-page
follows. An altered or forged link shows 403 and nothing else; a clinic B staff member signed in through /signin
sees only clinic B's inbox. Screenshots of the escalation page and the inbox go to screenshots/.

Everything runs on PostgreSQL with the real web app over HTTP and the real twilio SDK against the fake Twilio API.
All names, numbers and emails are made up."""

from __future__ import annotations

import json
import re
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from selenium.webdriver.common.by import By
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.inbound.media import fetch_for_message
from aftercare.models import Escalation, ReviewItem
from aftercare.staff.signing import sign
from tests.browser.conftest import PHONE, screenshot, serve_at_public_url
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.fakes.twilio_api import FakeTwilio, _png
from tests.processes import ACCOUNT_SID, AUTH_TOKEN, TWILIO_FROM
from tests.web_helpers import PUBLIC_URL, serve_app

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"
DANGER = "my lip has gone white and it really hurts, photo attached"
REPAGE_MINUTES = 0.05  # AFTERCARE_EMERGENCY_REPAGE_MINUTES here: a re-page is due 3 s after a page
LINK = re.compile(r"https?://\S+?/e/[A-Za-z0-9_.\-]+")
PHOTO_WIDTH = 240
PHOTO = _png(PHOTO_WIDTH, 160, (196, 120, 110))  # a real PNG, big enough to see in the screenshot
WAIT = 10  # seconds the browser may take for anything


@pytest.fixture
def clinic(env, monkeypatch):
    """(fake Twilio API, web app): the twilio SMS channel pointed at the fake, the app served at its public URL,
    and one clinic: Dr Rina on call, Ayu enrolled 5 hours after her filler (first reminders sent and forgotten)."""
    with ExitStack() as stack:
        fake = stack.enter_context(FakeTwilio(auth_token=AUTH_TOKEN))
        configure(monkeypatch, sms_channel="twilio", twilio_account_sid=ACCOUNT_SID, twilio_auth_token=AUTH_TOKEN,
                  twilio_from=TWILIO_FROM, twilio_api_base_url=fake.base_url,
                  emergency_repage_minutes=REPAGE_MINUTES)
        web = stack.enter_context(serve_at_public_url(monkeypatch))
        add_clinic(quiet_hours="00:00-00:00")
        cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr Rina", "--phone", DOCTOR)
        treated = (datetime.now(UTC) - timedelta(hours=5)).replace(microsecond=0).isoformat()
        enroll(phone=PATIENT, first_name="Ayu", treated_at=treated)
        cli_json("dispatch", "--once")  # the due reminders go out of the way first
        fake.clear()
        yield fake, web


def _sms_to(twilio: FakeTwilio, number: str) -> list[dict]:
    return [m for m in twilio.messages if m["to"] == number]


def _page_link(twilio: FakeTwilio) -> str:
    """The escalation link in the one page SMS the on-call clinician got (AFTERCARE_PUBLIC_URL + /e/<token>)."""
    [page] = _sms_to(twilio, DOCTOR)
    found = LINK.search(page["body"])
    assert found, f"no /e/ link in the page SMS: {page['body']!r}"
    assert found.group(0).startswith(get_settings().public_url + "/e/")
    return found.group(0)


def _fetch_photos(provider_sid: str) -> None:
    """What the worker does with the task the webhook queued: fetch that message's photos from Twilio."""
    counts = fetch_for_message(provider_sid)
    assert counts["stored"] == 1, counts


def _status_in_browser(browser) -> int:
    """The HTTP status the browser gets for the page it shows (selenium itself does not say)."""
    return browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(location.href, {cache: 'no-store'}).then(r => done(r.status), () => done(-1));")


def _wait(browser, condition, message: str):
    return WebDriverWait(browser, WAIT).until(lambda driver: condition(driver), message=message)


def test_the_clinician_opens_the_page_link_sees_words_and_photo_acknowledges_and_is_not_paged_again(clinic, browser):
    twilio, web = clinic
    photo = twilio.add_media(ACCOUNT_SID, PHOTO, content_type="image/png")  # served as Twilio serves MMS media
    sid = "MM" + uuid.uuid4().hex
    params = {"MessageSid": sid, "AccountSid": ACCOUNT_SID, "From": PATIENT, "To": TWILIO_FROM, "Body": DANGER,
              "NumMedia": "1", "MediaUrl0": photo, "MediaContentType0": "image/png"}
    answer = web.signed_post("/twilio/sms", params, url=web.base + "/twilio/sms")
    assert answer.status_code == 200 and "call us NOW" in answer.text
    _fetch_photos(sid)

    assert cli_json("dispatch", "--once")["sent"] >= 1
    paged_at = time.monotonic()
    link = _page_link(twilio)
    [opened] = cli_json("escalations", "list", "--open")
    assert opened["level"] == "emergency"
    repage_due = _escalation(opened["id"]).next_page_at
    assert repage_due is not None  # unacknowledged, the sweep after that time would page again

    browser.get(link)
    assert browser.execute_script("return window.innerWidth") == PHONE[0]
    assert _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".reply-body"), "no .reply-body")
    words = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".reply-body")]
    assert any("lip has gone white" in w for w in words), words
    assert "Ayu" in browser.find_element(By.ID, "patient-name").text
    [img] = browser.find_elements(By.CSS_SELECTOR, "img.photo")
    _wait(browser, lambda d: d.execute_script("return arguments[0].complete", img), "the photo never loaded")
    assert browser.execute_script("return arguments[0].naturalWidth", img) == PHOTO_WIDTH, "the photo is broken"
    screenshot(browser, "escalation.png")

    ack = browser.find_element(By.ID, "ack")
    ack.click()
    _wait(browser, staleness_of(ack), "pressing Acknowledge led nowhere")
    _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete", "no page after ack")
    refused = "cannot be used" in browser.page_source
    assert not refused, "the browser's own Acknowledge was refused (the 403 page)"
    assert _escalation(opened["id"]).status == "acknowledged"
    assert not browser.find_elements(By.ID, "ack"), "the page still offers Acknowledge"
    shown = cli_json("escalations", "show", str(opened["id"]))
    assert shown["acknowledged_by"] == "Dr Rina"  # the person the link was sent to
    assert "escalation.acknowledged" in [a["action"] for a in shown["audit"]]

    # The re-page would now be due: the sweep sends nothing more.
    time.sleep(max(0.0, paged_at + REPAGE_MINUTES * 60 + 0.5 - time.monotonic()))
    assert datetime.now(UTC) > _aware(repage_due)
    sent_before = twilio.count
    cli_json("dispatch", "--once")
    assert twilio.count == sent_before, twilio.messages[sent_before:]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _escalation(escalation_id: int) -> Escalation:
    with session_scope() as session:
        return session.get(Escalation, escalation_id)


def _altered(token: str, escalation_id: int) -> list[str]:
    """Links a clinician must not be able to use, each a different way of not being the link that was sent."""
    payload, stamp, signature = token.split(".")
    flipped = signature[:-3] + ("A" if signature[-3] != "A" else "B") + signature[-2:]
    other_case = base64_encode(json.dumps({"e": escalation_id + 1, "s": None}, separators=(",", ":"))).decode()
    return [
        f"{payload}.{stamp}.{flipped}",  # one character of the signature changed
        token[:-4],  # cut short
        f"{other_case}.{stamp}.{signature}",  # the payload changed to another escalation, signature kept
        sign("media", 1),  # a real token of this server, for another purpose (a photo)
        URLSafeTimedSerializer("not-the-server-key-" + "x" * 32, salt="escalation").dumps(
            {"e": escalation_id, "s": None}),  # the right shape signed with a key that is not the server's
    ]


def test_an_altered_or_forged_link_shows_403_and_nothing_of_the_patient(clinic, browser):
    twilio, web = clinic
    cli_json("reply", "--from", PATIENT, "--to", TWILIO_FROM, DANGER)
    cli_json("dispatch", "--once")
    link = _page_link(twilio)
    browser.get(link)  # the link as sent opens the page: the refusals below are the alterations'
    assert _status_in_browser(browser) == 200 and browser.find_elements(By.ID, "ack")
    token = urlsplit(link).path.rsplit("/", 1)[1]
    [opened] = cli_json("escalations", "list", "--open")
    for bad in _altered(token, opened["id"]):
        browser.get(f"{web.base}/e/{bad}")
        assert _status_in_browser(browser) == 403, bad
        page = browser.page_source
        assert "Ayu" not in page and "white" not in page and PATIENT not in page, bad
        assert not browser.find_elements(By.CSS_SELECTOR, "#ack, .reply-body, img.photo, #patient-name"), bad


# --- the review inbox: one clinic's items only --------------------------------------------------------------------
GLOW_SMS, LUMEN_SMS = "+15005550006", "+15005550007"
PASSWORD = "correct horse battery"


def _reply(sender: str, to: str, text: str) -> dict:
    return cli_json("reply", "--from", sender, "--to", to, text)


@pytest.fixture
def two_clinics(env, monkeypatch):
    """Clinic A (glow) and clinic B (lumen), each with a patient 30 h after filler, a question waiting for a person
    and an open emergency; Dewi is staff of clinic B. Returns clinic A's review item ids and its words."""
    configure(monkeypatch, public_url=PUBLIC_URL)  # https: the session cookie is Secure, as in production
    treated = (datetime.now(UTC) - timedelta(hours=30)).replace(microsecond=0).isoformat()
    for slug, sms, patient, name, doctor in (("glow", GLOW_SMS, PATIENT, "Ayu", DOCTOR),
                                             ("lumen", LUMEN_SMS, "+6281234567891", "Sari", "+6281100000002")):
        add_clinic(slug, phone="+62215000123" + str(len(slug)), quiet_hours="00:00-00:00", sms_from=sms,
                   name=f"{slug.title()} Clinic")
        cli_json("oncall", "add", "--clinic", slug, "--name", f"Dr {name}", "--phone", doctor)
        enroll(clinic=slug, phone=patient, first_name=name, treated_at=treated)
    a_items = [_reply(PATIENT, GLOW_SMS, "can I dye my hair this weekend?")["review_id"]]
    _reply(PATIENT, GLOW_SMS, "my lip has gone white and it really hurts")
    _reply("+6281234567891", LUMEN_SMS, "is it fine to go swimming on saturday?")
    _reply("+6281234567891", LUMEN_SMS, "my cheek is cold and looks blotchy blue")
    cli_json("staff", "add", "--clinic", "lumen", "--email", "dewi@lumen.example", "--name", "Dewi",
             "--password-stdin", input=PASSWORD + "\n")
    return {"review_ids": a_items, "words": ["dye my hair", "lip has gone white", "Ayu"]}


def _sign_in(browser, base: str, email: str, password: str) -> None:
    browser.get(base + "/signin")
    browser.find_element(By.CSS_SELECTOR, "input[name=email]").send_keys(email)
    browser.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(password)
    browser.find_element(By.ID, "signin").click()
    _wait(browser, lambda d: urlsplit(d.current_url).path == "/inbox", "sign-in did not lead to the inbox")


def _post_in_browser(browser, path: str) -> int:
    """POST the inbox page's own form fields (its CSRF token, the browser's cookie) to `path`; the status."""
    return browser.execute_async_script(
        "const [path, done] = arguments;"
        "const form = document.querySelector('form.done-form');"
        "fetch(path, {method: 'POST', body: new FormData(form), redirect: 'manual'})"
        ".then(r => done(r.status), () => done(-1));", path)


def test_clinic_b_staff_signed_in_in_the_browser_see_only_clinic_b_items(two_clinics, browser):
    with serve_app() as web:
        _sign_in(browser, web.base, "dewi@lumen.example", PASSWORD)
        reviews = browser.find_elements(By.CSS_SELECTOR, ".review-item")
        escalations = browser.find_elements(By.CSS_SELECTOR, ".escalation-item")
        assert len(reviews) == 1 and len(escalations) == 1
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "Lumen Clinic" in page and "Glow Clinic" not in page
        assert "swimming on saturday" in page and "blotchy blue" in page and "Sari" in page
        for words in two_clinics["words"]:
            assert words not in browser.page_source, words
        for item_id in two_clinics["review_ids"]:
            assert not browser.find_elements(By.ID, f"review-{item_id}")
        assert browser.execute_script("return window.innerWidth") == PHONE[0]
        screenshot(browser, "inbox.png")

        # Clinic A's item, asked for by its id with a valid form of clinic B's page: not found, and untouched.
        for item_id in two_clinics["review_ids"]:
            assert _post_in_browser(browser, f"/inbox/{item_id}/done") == 404
            assert _post_in_browser(browser, f"/inbox/{item_id}/escalate") == 404
            with session_scope() as session:
                assert session.get(ReviewItem, item_id).status == "open"

        # Her own item: the Done button works from the browser, and the item leaves her inbox.
        [own] = browser.find_elements(By.CSS_SELECTOR, ".review-item")
        own_id = int(own.get_attribute("id").removeprefix("review-"))
        own.find_element(By.CSS_SELECTOR, "button.done").click()
        _wait(browser, staleness_of(own), "pressing Done led nowhere")
        with session_scope() as session:
            assert session.get(ReviewItem, own_id).status == "done"
        assert not browser.find_elements(By.CSS_SELECTOR, ".review-item")
