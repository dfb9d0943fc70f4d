"""Staff accounts and the review inbox on the web (issue 9): accounts from the CLI, sign-in over real HTTP,
one clinic's items only, Done / Escalate audited with the staff member's name, CSRF, throttling, sign-out on
deactivation, cookie flags. All names, numbers and emails are made up."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import AuditEntry, Escalation, ReviewItem, StaffAccount
from aftercare.staff import auth
from aftercare.staff.auth import SIGNIN_FAILED, FailureCounter
from aftercare.staff.signing import secret_key
from tests import web_helpers
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli
from tests.conftest import configure
from tests.web_helpers import serve_app

GLOW_SMS, LUMEN_SMS = "+15005550006", "+15005550007"
GLOW_PATIENT, LUMEN_PATIENT = "+6281234567890", "+6281234567891"
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _flask_secret_and_fresh_counter(monkeypatch):
    """create_app sets app.secret_key on main (issue 9, W1); until then set it here, as create_app will."""
    real_create_app = web_helpers.create_app

    def create_app(*args, **kwargs):
        app = real_create_app(*args, **kwargs)
        app.secret_key = app.secret_key or secret_key()
        return app

    monkeypatch.setattr(web_helpers, "create_app", create_app)
    monkeypatch.setattr(auth, "failures", FailureCounter())


@pytest.fixture
def clinics(env):
    """Two clinics, each with an on-call clinician, a filler patient 30 h after treatment and a question waiting."""
    treated = (datetime.now(UTC) - timedelta(hours=30)).replace(microsecond=0).isoformat()
    for slug, sms, patient, name, doctor in (("glow", GLOW_SMS, GLOW_PATIENT, "Ayu", "+6281100000001"),
                                             ("lumen", LUMEN_SMS, LUMEN_PATIENT, "Sari", "+6281100000002")):
        add_clinic(slug, phone="+62215000123" + str(len(slug)), quiet_hours="00:00-00:00", sms_from=sms)
        cli_json("oncall", "add", "--clinic", slug, "--name", f"Dr {slug}", "--phone", doctor)
        enroll(clinic=slug, phone=patient, first_name=name, treated_at=treated)
    return {"glow": _reply(GLOW_PATIENT, GLOW_SMS, "can I dye my hair this weekend?")["review_id"],
            "lumen": _reply(LUMEN_PATIENT, LUMEN_SMS, "is it fine to go swimming on saturday?")["review_id"]}


def _reply(sender: str, to: str, text: str) -> dict:
    return cli_json("reply", "--from", sender, "--to", to, text)


def _add_staff(clinic: str, email: str, name: str, password: str = PASSWORD) -> dict:
    return cli_json("staff", "add", "--clinic", clinic, "--email", email, "--name", name, "--password-stdin",
                    input=password + "\n")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _sign_in(base: str, email: str, password: str = PASSWORD) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    form = browser.get(base + "/signin", timeout=10)
    response = browser.post(base + "/signin", data={"email": email, "password": password, "csrf_token": _csrf(form.text)},
                            timeout=10, allow_redirects=False)
    return browser, response


def _signed_in(base: str, email: str) -> tuple[requests.Session, str]:
    """A signed-in browser and the CSRF token of its inbox page."""
    browser, response = _sign_in(base, email)
    assert response.status_code == 303 and response.headers["Location"].endswith("/inbox")
    page = browser.get(base + "/inbox", timeout=10)
    assert page.status_code == 200
    return browser, _csrf(page.text)


def _item(item_id: int) -> ReviewItem:
    with session_scope() as session:
        return session.get(ReviewItem, item_id)


def _audit(action: str) -> list[AuditEntry]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


# --- accounts from the command line ----------------------------------------------------------------------------
def test_staff_accounts_are_added_listed_and_deactivated_from_the_cli_and_audited(clinics):
    added = _add_staff("glow", "  Rina.Nurse@Glow.Example ", "Rina Wijaya")
    assert added["email"] == "rina.nurse@glow.example" and added["clinic"] == "glow"
    assert added["active"] is True and added["has_password"] is True
    _add_staff("lumen", "dewi@lumen.example", "Dewi")
    [listed] = cli_json("staff", "list", "--clinic", "glow")
    assert listed["id"] == added["id"] and listed["name"] == "Rina Wijaya"
    gone = cli_json("staff", "deactivate", "RINA.NURSE@glow.example")
    assert gone["active"] is False
    assert [e.subject_id for e in _audit("staff.added")] == [added["id"], added["id"] + 1]
    assert [e.subject_id for e in _audit("staff.deactivated")] == [added["id"]]
    again = run_cli("staff", "deactivate", "rina.nurse@glow.example")
    assert again.exit_code == 1 and "already deactivated" in again.stderr


def test_the_password_is_stored_only_as_an_argon2_hash(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with session_scope() as session:
        stored = session.scalars(select(StaffAccount.password_hash)).one()
        everything = " ".join(str(row) for row in session.execute(select(AuditEntry.details)))
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert PASSWORD not in everything


def test_the_password_prompt_is_hidden_and_asked_twice(clinics):
    result = run_cli("staff", "add", "--clinic", "glow", "--email", "rina@glow.example", "--name", "Rina",
                     input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and result.output.count("assword") >= 2
    mismatch = run_cli("staff", "add", "--clinic", "glow", "--email", "tono@glow.example", "--name", "Tono",
                       input=f"{PASSWORD}\nsomething else\n")
    assert mismatch.exit_code != 0 and PASSWORD not in mismatch.output


@pytest.mark.parametrize(("args", "password", "message"), [
    (["--clinic", "glow", "--email", "RINA@glow.example", "--name", "Rina Two"], PASSWORD, "already exists"),
    (["--clinic", "glow", "--email", "rina@@glow", "--name", "Rina"], PASSWORD, "invalid email"),
    (["--clinic", "glow", "--email", "rina@glow.example\nBcc: x@evil.example", "--name", "R"], PASSWORD,
     "invalid email"),
    (["--clinic", "nowhere", "--email", "new@glow.example", "--name", "Rina"], PASSWORD, "unknown clinic"),
    (["--clinic", "glow", "--email", "new@glow.example", "--name", "Rina\u202eevil"], PASSWORD, "control characters"),
    (["--clinic", "glow", "--email", "new@glow.example", "--name", "   "], PASSWORD, "must not be empty"),
    (["--clinic", "glow", "--email", "new@glow.example", "--name", "Rina"], "short", "too short"),
])
def test_bad_staff_input_is_a_one_line_error_and_changes_nothing(clinics, args, password, message):
    _add_staff("glow", "rina@glow.example", "Rina")
    result = run_cli("staff", "add", *args, "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "glow.example" not in result.stderr and PASSWORD not in result.stderr  # no email or password echoed
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(StaffAccount)) == 1
    assert len(_audit("staff.added")) == 1


def test_unknown_email_for_deactivate_or_password_is_a_one_line_error(clinics):
    for args in (["deactivate", "nobody@glow.example"], ["password", "nobody@glow.example", "--password-stdin"]):
        result = run_cli("staff", *args, input=PASSWORD + "\n")
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "no staff account" in result.stderr
        assert "nobody" not in result.stderr


# --- signing in ------------------------------------------------------------------------------------------------
def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        _, wrong = _sign_in(web.base, "rina@glow.example", "not the password at all")
        _, unknown = _sign_in(web.base, "nobody@glow.example", PASSWORD)
        _, empty = _sign_in(web.base, "", "")
    assert wrong.status_code == unknown.status_code == 401
    flash = re.compile(r'<p class="flash error"[^>]*>([^<]*)</p>')
    assert flash.findall(wrong.text) == flash.findall(unknown.text) == [SIGNIN_FAILED.replace("'", "&#39;")]
    assert empty.status_code == 401


def test_repeated_failures_make_that_email_wait_even_with_the_right_password(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    _add_staff("glow", "tono@glow.example", "Tono")
    with serve_app() as web:
        for _ in range(auth.MAX_FAILURES):
            assert _sign_in(web.base, "Rina@glow.example", "guess guess guess")[1].status_code == 401
        _, blocked = _sign_in(web.base, "rina@glow.example")
        assert blocked.status_code == 429 and "wait" in blocked.text.lower()
        for _ in range(auth.MAX_FAILURES):  # an unknown email is counted alike: nothing tells them apart
            _sign_in(web.base, "ghost@glow.example", "guess guess guess")
        assert _sign_in(web.base, "ghost@glow.example")[1].status_code == 429
        _signed_in(web.base, "tono@glow.example")  # another email is not held up


def test_the_session_cookie_is_http_only_and_same_site_lax_and_secure_under_https(clinics, monkeypatch):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        cookies = [requests.get(web.base + "/signin", timeout=10).headers["Set-Cookie"],
                   _sign_in(web.base, "rina@glow.example")[1].headers["Set-Cookie"]]
    for cookie in cookies:
        assert cookie.startswith("aftercare_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie
    configure(monkeypatch, public_url="https://aftercare.example.org")
    with serve_app() as web:  # (a client keeps a Secure cookie off plain http, so only the first one is seen here)
        cookie = requests.get(web.base + "/signin", timeout=10).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_the_inbox_needs_a_signed_in_account(clinics):
    with serve_app() as web:
        response = requests.get(web.base + "/inbox", timeout=10, allow_redirects=False)
        assert response.status_code == 303 and response.headers["Location"].endswith("/signin")
        forged = requests.get(web.base + "/inbox", cookies={"aftercare_session": "eyJzdGFmZiI6MSwidiI6IngifQ.x.y"},
                              timeout=10, allow_redirects=False)
        assert forged.status_code == 303
        post = requests.post(web.base + f"/inbox/{clinics['glow']}/done", data={"csrf_token": "x"}, timeout=10)
        assert post.status_code == 403
    assert _item(clinics["glow"]).status == "open"


# --- the inbox -------------------------------------------------------------------------------------------------
def test_staff_see_their_own_clinics_items_only_most_serious_first(clinics):
    emergency = _reply(GLOW_PATIENT, GLOW_SMS, "my lip has gone white and it really hurts")
    _reply(LUMEN_PATIENT, LUMEN_SMS, "bibir aku jadi putih pucat dan sakit banget")
    unknown = _reply("+6285599990001", GLOW_SMS, "hi is this the clinic? I had a peel last week")
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, _ = _signed_in(web.base, "rina@glow.example")
        page = browser.get(web.base + "/inbox", timeout=10)
    assert page.headers["Cache-Control"] == "no-store"
    html = page.text
    articles = re.findall(r'<article class="card (review-item|escalation-item)[^"]*" id="(\w+)-(\d+)"', html)
    assert [a[0] for a in articles] == ["escalation-item", "review-item", "review-item"]
    assert articles[0][2] == str(emergency["escalation_id"])
    assert {int(a[2]) for a in articles[1:]} == {clinics["glow"], unknown["review_id"]}
    assert "can I dye my hair this weekend?" in html and "my lip has gone white" in html and "Ayu" in html
    assert "peel last week" in html and "unknown sender" in html and "question" in html
    assert "swimming" not in html and "Sari" not in html and "putih" not in html  # nothing of clinic lumen
    assert html.count('class="done"') == 2 and html.count("escalate secondary") == 2


def test_done_with_a_note_is_audited_with_the_staff_members_name(clinics):
    _add_staff("glow", "rina@glow.example", "Rina Wijaya")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        done = browser.post(web.base + f"/inbox/{clinics['glow']}/done",
                            data={"csrf_token": token, "note": "called her back, fine to dye after 2 weeks"},
                            timeout=10)
        assert done.status_code == 200 and done.url.endswith("/inbox") and "is done" in done.text
        assert "dye my hair" not in done.text  # gone from the inbox
        again = browser.post(web.base + f"/inbox/{clinics['glow']}/done", data={"csrf_token": token}, timeout=10)
        assert "already done" in again.text
    item = _item(clinics["glow"])
    assert item.status == "done" and item.done_by == "Rina Wijaya" and item.note.startswith("called her back")
    [entry] = _audit("review.done")
    assert entry.actor == "Rina Wijaya" and entry.subject_id == clinics["glow"]


def test_escalate_opens_an_escalation_that_pages_on_call_audited_with_the_name(clinics):
    _add_staff("glow", "rina@glow.example", "Rina Wijaya")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        bad = browser.post(web.base + f"/inbox/{clinics['glow']}/escalate", data={"csrf_token": token,
                                                                                 "level": "routine"}, timeout=10)
        assert bad.status_code == 400 and _item(clinics["glow"]).status == "open"
        response = browser.post(web.base + f"/inbox/{clinics['glow']}/escalate",
                                data={"csrf_token": token, "level": "urgent"}, timeout=10)
        assert response.status_code == 200 and "escalation-item" in response.text
    assert _item(clinics["glow"]).status == "escalated"
    with session_scope() as session:
        escalation = session.scalars(select(Escalation)).one()
        assert escalation.level == "urgent" and escalation.clinic_id == _item(clinics["glow"]).clinic_id
        assert escalation.next_page_at is not None  # on-call is paged at once
    [entry] = _audit("review.escalated")
    assert entry.actor == "Rina Wijaya" and entry.details["level"] == "urgent"


def test_another_clinics_staff_can_neither_see_nor_act_on_an_item(clinics):
    _add_staff("lumen", "dewi@lumen.example", "Dewi")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "dewi@lumen.example")
        page = browser.get(web.base + "/inbox", timeout=10).text
        assert "swimming" in page and "dye my hair" not in page
        glow_item = clinics["glow"]
        for path, data in ((f"/inbox/{glow_item}/done", {"note": "x"}), (f"/inbox/{glow_item}/escalate",
                                                                         {"level": "emergency"}),
                           ("/inbox/999999/done", {})):
            response = browser.post(web.base + path, data={"csrf_token": token, **data}, timeout=10)
            assert response.status_code == 404
    assert _item(clinics["glow"]).status == "open"
    assert not _audit("review.done") and not _audit("review.escalated")
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Escalation)) == 0


def test_a_post_without_the_csrf_token_is_refused(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        for data in ({}, {"csrf_token": ""}, {"csrf_token": token[:-2] + "xx"}):
            done = browser.post(web.base + f"/inbox/{clinics['glow']}/done", data=data, timeout=10)
            escalate = browser.post(web.base + f"/inbox/{clinics['glow']}/escalate", data={**data, "level": "urgent"},
                                    timeout=10)
            assert done.status_code == escalate.status_code == 403
        signin = requests.post(web.base + "/signin", data={"email": "rina@glow.example", "password": PASSWORD},
                               timeout=10, allow_redirects=False)
        assert signin.status_code == 403 and "Set-Cookie" not in signin.headers
        assert browser.post(web.base + "/signout", data={}, timeout=10).status_code == 403
    assert _item(clinics["glow"]).status == "open" and not _audit("review.done")


def test_a_deactivated_account_is_signed_out_at_its_next_request(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        cli_json("staff", "deactivate", "rina@glow.example")
        page = browser.get(web.base + "/inbox", timeout=10)
        assert page.url.endswith("/signin") and "signed out" in page.text and "dye my hair" not in page.text
        done = browser.post(web.base + f"/inbox/{clinics['glow']}/done", data={"csrf_token": token}, timeout=10)
        assert "dye my hair" not in done.text
        assert _sign_in(web.base, "rina@glow.example")[1].status_code == 401
    assert _item(clinics["glow"]).status == "open"


def test_a_new_password_signs_out_the_old_sessions(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, _ = _signed_in(web.base, "rina@glow.example")
        cli_json("staff", "password", "rina@glow.example", "--password-stdin", input="a brand new passphrase\n")
        assert browser.get(web.base + "/inbox", timeout=10).url.endswith("/signin")
        assert _sign_in(web.base, "rina@glow.example")[1].status_code == 401
        _, ok = _sign_in(web.base, "rina@glow.example", "a brand new passphrase")
        assert ok.status_code == 303
    assert len(_audit("staff.password_set")) == 1 and len(_audit("staff.signed_in")) == 2


def test_signing_out_ends_the_session(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        out = browser.post(web.base + "/signout", data={"csrf_token": token}, timeout=10)
        assert out.url.endswith("/signin")
        assert browser.get(web.base + "/inbox", timeout=10, allow_redirects=False).status_code == 303


def test_a_copied_session_cookie_stops_working_after_signing_out(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        copied = requests.Session()
        copied.cookies.update(browser.cookies)
        assert copied.get(web.base + "/inbox", timeout=10, allow_redirects=False).status_code == 200
        browser.post(web.base + "/signout", data={"csrf_token": token}, timeout=10)
        assert copied.get(web.base + "/inbox", timeout=10, allow_redirects=False).status_code == 303


def test_an_escalation_opened_from_the_inbox_acts_as_the_signed_in_staff_member_only(clinics, monkeypatch):
    _add_staff("glow", "rina@glow.example", "Rina Wijaya")
    escalation_id = _reply(GLOW_PATIENT, GLOW_SMS, "my lip went white and it hurts a lot")["escalation_id"]
    with serve_app() as web:
        configure(monkeypatch, public_url=web.base)  # the links the inbox draws point at this server
        browser, _ = _signed_in(web.base, "rina@glow.example")
        link = re.search(r'href="([^"]*/e/[^"]+)"', browser.get(web.base + "/inbox", timeout=10).text).group(1)
        page = browser.get(link, timeout=10)
        assert page.status_code == 200 and "Rina Wijaya" in page.text
        # The same link without her session (copied, forwarded) opens nothing.
        assert requests.get(link, timeout=10).status_code == 403
        csrf = re.search(r'id="ack-form".*?name="csrf_token" value="([^"]+)"', page.text, re.S).group(1)
        browser.post(link + "/ack", data={"csrf_token": csrf}, headers={"Origin": web.base}, timeout=10)
    shown = cli_json("escalations", "show", str(escalation_id))
    assert shown["status"] == "acknowledged" and shown["acknowledged_by"] == "Rina Wijaya"


def test_an_item_id_past_the_databases_integers_is_404_not_500(clinics):
    _add_staff("glow", "rina@glow.example", "Rina")
    with serve_app() as web:
        browser, token = _signed_in(web.base, "rina@glow.example")
        for action in ("done", "escalate"):
            response = browser.post(f"{web.base}/inbox/99999999999999999999999/{action}",
                                    data={"csrf_token": token, "level": "urgent"}, timeout=10)
            assert response.status_code == 404


def test_a_password_of_spaces_is_refused(clinics):
    result = run_cli("staff", "add", "--clinic", "glow", "--email", "x@glow.example", "--name", "X",
                     "--password-stdin", input=" " * 12 + "\n")
    assert result.exit_code == 1 and "too short" in result.stderr
