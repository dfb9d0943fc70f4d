"""The escalation page a page's link opens: over real HTTP, from the link in a real page SMS."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import requests
from sqlalchemy import func, select

from aftercare.audit import entries_for
from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.escalation.paging import queue_due_pages
from aftercare.inbound.web import create_app
from aftercare.models import Escalation, MessageKind, OnCallStaff, ScheduledMessage
from aftercare.protocols import is_gsm7, sms_segments
from aftercare.staff.links import escalation_link, escalation_token
from aftercare.staff.signing import sign
from tests.cli_helpers import add_clinic, cli_json, enroll
from tests.conftest import configure
from tests.web_helpers import WebClient, serve_app

PATIENT = "+6281234567890"
OTHER_PATIENT = "+6281234567111"
DOCTOR_A = "+6281100000001"
DOCTOR_B = "+6281100000002"
WORDS = "my lip has gone white and it really hurts"
LINK = re.compile(r"https?://\S+/e/[A-Za-z0-9_.\-]+")


class Page(HTMLParser):
    """The text of each element with an id or class, every link's href, and each form's hidden csrf_token."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.by_class: dict[str, list[str]] = {}
        self.hrefs: dict[str, str] = {}
        self.csrf: dict[str, str] = {}
        self.images: list[str] = []
        self._open: list[tuple[str, str | None, list[str]]] = []
        self._texts: list[list[str]] = []
        self._form: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self._form = a.get("id")
        if tag == "input" and a.get("name") == "csrf_token" and self._form:
            self.csrf[self._form] = a.get("value") or ""
        if tag == "a" and a.get("id"):
            self.hrefs[a["id"]] = a.get("href") or ""
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("input", "img", "meta", "link", "br"):
            return
        self._open.append((tag, a.get("id"), (a.get("class") or "").split()))
        self._texts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if not self._open or self._open[-1][0] != tag:
            return
        _, element_id, classes = self._open.pop()
        text = " ".join("".join(self._texts.pop()).split())
        if self._texts:
            self._texts[-1].append(" " + text + " ")
        if element_id:
            self.by_id[element_id] = text
        for name in classes:
            self.by_class.setdefault(name, []).append(text)

    def handle_data(self, data: str) -> None:
        if self._texts:
            self._texts[-1].append(data)


@pytest.fixture
def web(env, monkeypatch) -> Iterator[WebClient]:
    """The real web app on loopback; the links in pages point at it."""
    configure(monkeypatch, secret_key="test-secret-for-links")
    with serve_app() as client:
        configure(monkeypatch, public_url=client.base)
        yield client


@pytest.fixture
def paged(web) -> dict:
    """A dermal filler patient whose evening check-in went out, who then replies with danger signs; the page to
    Dr A is sent. Returns the page SMS and its link."""
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A, "--email", "a@glow.example")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr B", "--phone", DOCTOR_B)
    enroll(phone=PATIENT, treated_at=_hours_ago(5), email="ayu@example.com")
    cli_json("dispatch", "--once")  # the check-in (and everything else due) goes out before the reply
    escalation_id = cli_json("reply", "--from", PATIENT, WORDS)["escalation_id"]
    cli_json("dispatch", "--once")
    sms = _outbox_to(DOCTOR_A)[-1]
    return {"escalation_id": escalation_id, "sms": sms, "url": LINK.search(sms["body"]).group(0)}


def _hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0).isoformat()


def _outbox_to(recipient: str) -> list[dict]:
    return [m for m in read_outbox(get_settings()) if m["to"] == recipient]


def _page_rows(escalation_id: int) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(ScheduledMessage).where(
            ScheduledMessage.escalation_id == escalation_id, ScheduledMessage.kind == MessageKind.PAGE))


def _status(escalation_id: int) -> str:
    with session_scope() as session:
        return session.get(Escalation, escalation_id).status


def _audit(escalation_id: int) -> list[tuple[str, str, str | None]]:
    with session_scope() as session:
        return [(a.actor, a.action, a.details.get("via"))
                for a in entries_for(session, subject_type="escalation", subject_id=escalation_id)]


def _open(browser: requests.Session, url: str) -> Page:
    response = browser.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return Page(response.text)


def _post(browser: requests.Session, url: str, action: str, csrf: str | None, **fields: str) -> requests.Response:
    data = {**fields, **({"csrf_token": csrf} if csrf is not None else {})}
    return browser.post(f"{url}/{action}", data=data, timeout=10)


# The link in the page ----------------------------------------------------------------------------------------


def test_the_link_in_a_real_page_sms_opens_the_page_with_what_the_clinician_needs(paged):
    response = requests.get(paged["url"], timeout=10)
    assert response.status_code == 200
    page = Page(response.text)
    assert page.by_id["patient-name"] == "Ayu"
    assert page.by_class["reply-body"] == [WORDS]
    assert "dermal-filler" in page.by_id["treatments"] and "5 h" in page.by_id["treatments"]
    assert page.by_id["level"] == "EMERGENCY"
    assert "white" in page.by_id["signs"].lower() and page.by_id["explanation"]
    assert "checkin-evening" in page.by_id["protocol-step"]  # the check-in the reply came after, with its text
    assert "Reply YES or NO" in page.by_id["protocol-step"]
    assert "Dr A by sms" in page.by_id["pages"] and "Dr A by email" in page.by_id["pages"]
    assert WORDS in page.by_id["timeline"] and "checkin-evening" in page.by_id["timeline"]
    assert page.hrefs["call"] == f"tel:{PATIENT}"
    assert set(page.csrf) == {"ack-form", "resolve-form"}
    assert page.images == []  # no photo was sent


def test_the_page_email_carries_the_same_persons_link(paged):
    email = _outbox_to("a@glow.example")[-1]
    assert LINK.search(email["body"]).group(0) == paged["url"]
    assert requests.get(paged["url"], timeout=10).status_code == 200


@pytest.mark.parametrize("words", [
    WORDS,
    "Sorry to bother you at night but my upper lip went grey and blotchy and it hurts a lot more than this "
    "morning, also my vision is a bit blurry on the left side, is that normal?",
])
def test_the_page_sms_stays_gsm7_and_within_three_segments_with_the_link(web, words):
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A)
    enroll(phone=PATIENT, treated_at=_hours_ago(3), treatment="skin-booster")
    enroll(phone=PATIENT, treated_at=_hours_ago(2))  # two treatments named: a longer page
    cli_json("reply", "--from", PATIENT, words)
    cli_json("dispatch", "--once")
    body = _outbox_to(DOCTOR_A)[-1]["body"]
    assert LINK.search(body) and body.endswith(LINK.search(body).group(0))  # last: nothing stuck to the URL
    assert PATIENT in body and "ACK" in body  # the link replaces nothing
    assert is_gsm7(body), [c for c in body if not is_gsm7(c)]
    assert sms_segments(body) <= 3, f"{len(body)} characters: {body}"


def test_a_page_to_the_clinic_phone_carries_a_link_that_acts_as_the_clinic_phone(web):
    add_clinic(quiet_hours="00:00-00:00")  # nobody on call: the clinic's own phone is paged
    enroll(phone=PATIENT, treated_at=_hours_ago(3))
    escalation_id = cli_json("reply", "--from", PATIENT, WORDS)["escalation_id"]
    cli_json("dispatch", "--once")
    url = LINK.search(_outbox_to("+622150001234")[-1]["body"]).group(0)
    browser = requests.Session()
    assert _post(browser, url, "ack", _open(browser, url).csrf["ack-form"]).status_code == 200
    assert ("clinic phone", "escalation.acknowledged", "web") in _audit(escalation_id)


# Acting on it ------------------------------------------------------------------------------------------------


def test_acknowledge_from_the_page_stops_the_repages_at_once_and_names_the_clinician(paged):
    escalation_id, url = paged["escalation_id"], paged["url"]
    browser = requests.Session()
    response = _post(browser, url, "ack", _open(browser, url).csrf["ack-form"])
    assert response.status_code == 200 and response.history[0].status_code == 303  # back to the page
    page = Page(response.text)
    assert "Nobody else will be paged" in response.text and "Acknowledged by Dr A" in page.by_id["actions"]
    assert "ack-form" not in page.csrf and "resolve-form" in page.csrf
    pages = _page_rows(escalation_id)
    with session_scope() as session:  # the re-page interval passes: the sweep finds nothing to page
        assert session.get(Escalation, escalation_id).next_page_at is None
        assert queue_due_pages(session, now=datetime.now(UTC) + timedelta(hours=2)) == 0
    cli_json("dispatch", "--once")
    assert _page_rows(escalation_id) == pages and not _outbox_to(DOCTOR_B)
    assert ("Dr A", "escalation.acknowledged", "web") in _audit(escalation_id)
    assert ("Dr A", "escalation.viewed", "web") in _audit(escalation_id)


def test_without_acknowledge_the_sweep_pages_again(paged):
    """The control for the test above: the same sweep pages Dr B while nobody has acknowledged."""
    pages = _page_rows(paged["escalation_id"])
    with session_scope() as session:
        assert queue_due_pages(session, now=datetime.now(UTC) + timedelta(hours=2)) == 1
    assert _page_rows(paged["escalation_id"]) > pages


def test_resolve_needs_a_note_then_resolves_as_the_clinician(paged):
    escalation_id, url = paged["escalation_id"], paged["url"]
    browser = requests.Session()
    csrf = _open(browser, url).csrf["resolve-form"]
    response = _post(browser, url, "resolve", csrf, note="   ")
    assert response.status_code == 200 and "a resolution note is required" in response.text
    assert _status(escalation_id) == "open"
    response = _post(browser, url, "resolve", csrf, note="x" * 4001)
    assert "longer than 4000" in response.text and _status(escalation_id) == "open"
    response = _post(browser, url, "resolve", csrf, note="Called her, hyaluronidase given at 23:10")
    assert response.status_code == 200 and _status(escalation_id) == "resolved"
    page = Page(response.text)
    assert "Resolved by Dr A" in page.by_id["actions"] and "hyaluronidase" in page.by_id["actions"]
    assert page.csrf == {}  # nothing left to do
    audit = _audit(escalation_id)
    assert ("Dr A", "escalation.acknowledged", "web") in audit and ("Dr A", "escalation.resolved", "web") in audit


def test_a_second_press_or_a_replayed_form_is_refused_with_a_clear_message(paged):
    escalation_id, url = paged["escalation_id"], paged["url"]
    browser = requests.Session()
    forms = _open(browser, url).csrf
    assert _post(browser, url, "ack", forms["ack-form"]).status_code == 200
    again = _post(browser, url, "ack", forms["ack-form"])
    assert again.status_code == 409 and "already acknowledged (by Dr A)" in again.text
    # Resolving after a colleague acknowledged is the normal next step: the resolve form drawn while the case was
    # open still works, note and all.
    later = _post(browser, url, "resolve", forms["resolve-form"], note="seen, all well")
    assert later.status_code == 200 and _status(escalation_id) == "resolved"
    entries = len(_audit(escalation_id))
    for action, csrf in (("ack", forms["ack-form"]), ("resolve", forms["resolve-form"])):  # captured, replayed
        replay = requests.post(f"{url}/{action}", data={"csrf_token": csrf, "note": "replayed"}, timeout=10)
        assert replay.status_code == 409 and "already resolved (by Dr A)" in replay.text
    with session_scope() as session:
        assert session.get(Escalation, escalation_id).resolution_note == "seen, all well"
    assert len(_audit(escalation_id)) == entries


# Refusals ----------------------------------------------------------------------------------------------------


def _assert_refused_showing_nothing(response: requests.Response) -> None:
    assert response.status_code == 403
    assert response.headers["Cache-Control"] == "no-store"
    for private in ("Ayu", "white", PATIENT, "Dr A", "dermal-filler"):
        assert private not in response.text


def test_an_altered_forged_or_other_purpose_link_gets_403_and_shows_nothing(paged):
    url, escalation_id = paged["url"], paged["escalation_id"]
    base, token = url.rsplit("/e/", 1)
    payload, rest = token.split(".", 1)
    # The signature's first character, not its last: the last base64 character carries padding bits, and
    # changing only those leaves the decoded signature as it was.
    signed, signature = token.rsplit(".", 1)
    flipped = f"{signed}.{'B' if signature[0] != 'B' else 'C'}{signature[1:]}"
    other_key = escalation_link(escalation_id, None, get_settings().model_copy(update={"secret_key": "not-ours"}))
    for bad in (
        flipped,  # the signature altered
        sign("escalation", {"e": escalation_id + 1, "s": None}).split(".", 1)[0] + "." + rest,  # payload swapped
        other_key.rsplit("/e/", 1)[1],  # signed with another key
        sign("media", {"e": escalation_id, "s": None}),  # a token for another purpose
        sign("escalation", [escalation_id]),  # ours, but not the shape of a link
        sign("escalation", {"e": True, "s": None}),
        "not-a-token",
    ):
        _assert_refused_showing_nothing(requests.get(f"{base}/e/{bad}", timeout=10))
        refused = requests.post(f"{base}/e/{bad}/ack", data={"csrf_token": "x"}, timeout=10)
        assert refused.status_code == 403
    assert _status(escalation_id) == "open"


def test_an_expired_link_gets_403(paged, monkeypatch):
    browser = requests.Session()
    csrf = _open(browser, paged["url"]).csrf["ack-form"]
    configure(monkeypatch, page_link_hours=1 / 3600)  # a link lives one second
    time.sleep(2.2)
    _assert_refused_showing_nothing(browser.get(paged["url"], timeout=10))
    assert _post(browser, paged["url"], "ack", csrf).status_code == 403
    assert _status(paged["escalation_id"]) == "open"


def test_a_post_without_the_right_form_token_or_from_another_site_is_403(paged):
    escalation_id, url = paged["escalation_id"], paged["url"]
    browser = requests.Session()
    forms = _open(browser, url).csrf
    with session_scope() as session:
        dr_b = session.scalar(select(OnCallStaff.id).where(OnCallStaff.name == "Dr B"))
    dr_b_forms = _open(browser, escalation_link(escalation_id, dr_b)).csrf
    for action, csrf in (
        ("ack", None),  # no token
        ("ack", ""),
        ("ack", "forged"),
        ("ack", forms["resolve-form"]),  # a token for another action
        ("ack", dr_b_forms["ack-form"]),  # a token for another person's link to the same case
        ("ack", sign("csrf", {"l": "0" * 32, "a": "ack", "st": "open"})),
        ("resolve", None),
    ):
        assert _post(browser, url, action, csrf, note="n").status_code == 403, (action, csrf)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        response = browser.post(f"{url}/ack", data={"csrf_token": forms["ack-form"]}, headers=headers, timeout=10)
        assert response.status_code == 403, headers
    assert _status(escalation_id) == "open"
    assert not [a for a in _audit(escalation_id) if a[1] == "escalation.acknowledged"]
    same_site = browser.post(f"{url}/ack", data={"csrf_token": forms["ack-form"]}, timeout=10,
                             headers={"Origin": web_origin(url), "Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 200 and _status(escalation_id) == "acknowledged"


def web_origin(url: str) -> str:
    return url.split("/e/", 1)[0]


def test_a_link_for_one_escalation_never_shows_another(paged):
    enroll(phone=OTHER_PATIENT, first_name="Budi", treated_at=_hours_ago(2))
    other_words = "my eyelid is grey and I cannot see well"
    other_id = cli_json("reply", "--from", OTHER_PATIENT, other_words)["escalation_id"]
    assert other_id != paged["escalation_id"]
    with session_scope() as session:
        dr_a = session.scalar(select(OnCallStaff.id).where(OnCallStaff.name == "Dr A"))
    first, second = requests.get(paged["url"], timeout=10).text, requests.get(
        escalation_link(other_id, dr_a), timeout=10).text
    assert "Ayu" in first and WORDS in first and "Budi" not in first and other_words not in first
    assert OTHER_PATIENT not in first
    assert "Budi" in second and other_words in second and "Ayu" not in second and WORDS not in second


def test_a_link_naming_someone_of_another_clinic_gets_403(paged):
    add_clinic("other", phone="+622150009999")
    cli_json("oncall", "add", "--clinic", "other", "--name", "Dr X", "--phone", "+6281100000009")
    with session_scope() as session:
        dr_x = session.scalar(select(OnCallStaff.id).where(OnCallStaff.name == "Dr X"))
    _assert_refused_showing_nothing(requests.get(escalation_link(paged["escalation_id"], dr_x), timeout=10))
    base = web_origin(paged["url"])
    _assert_refused_showing_nothing(requests.get(f"{base}/e/{escalation_token(999999, None)}", timeout=10))


# Headers and cookies -----------------------------------------------------------------------------------------


def test_pages_with_personal_data_are_never_cached(paged):
    browser = requests.Session()
    response = browser.get(paged["url"], timeout=10)
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    assert response.headers["Referrer-Policy"] == "same-origin"
    posted = _post(browser, paged["url"], "ack", Page(response.text).csrf["ack-form"])
    assert all(r.headers["Cache-Control"] == "no-store" for r in [*posted.history, posted])


def test_the_session_cookie_is_http_only_lax_and_secure_behind_https(paged, monkeypatch):
    browser = requests.Session()
    csrf = _open(browser, paged["url"]).csrf["ack-form"]
    response = browser.post(f"{paged['url']}/ack", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # plain HTTP here
    configure(monkeypatch, public_url="https://aftercare.example.org")
    app = create_app()
    assert app.config["SESSION_COOKIE_SECURE"] is True and app.secret_key == "test-secret-for-links"


def test_the_page_says_when_the_patient_can_only_be_reached_by_phone(web):
    add_clinic(quiet_hours="00:00-00:00")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A)
    enroll(phone=PATIENT, treated_at=_hours_ago(3))
    cli_json("reply", "--from", PATIENT, "STOP")
    escalation_id = cli_json("reply", "--from", PATIENT, WORDS)["escalation_id"]
    page = requests.get(escalation_link(escalation_id, None), timeout=10)
    assert page.status_code == 200 and "opted out of SMS: reach them by phone" in page.text


def test_a_page_about_a_review_item_escalated_from_the_inbox_says_who_and_what(web):
    add_clinic(quiet_hours="00:00-00:00", sms_from="+15005550006")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR_A)
    enroll(phone=PATIENT, treated_at=_hours_ago(30))
    review_id = cli_json("reply", "--from", PATIENT, "--to", "+15005550006", "--media", "2", "")["review_id"]
    cli_json("inbox", "escalate", str(review_id), "--by", "Nurse Putu", "--level", "urgent")
    cli_json("dispatch", "--once")
    [page_sms] = [m for m in _outbox_to(DOCTOR_A) if "AFTERCARE" in m["body"]]
    assert "Nurse Putu" in page_sms["body"] and "2 photo(s)" in page_sms["body"]
    assert "escalated from review" not in page_sms["body"].lower().replace("escalated from the review", "")
