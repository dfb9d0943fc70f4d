"""Input hygiene at every entry point: phone numbers as people and spreadsheets write them, names that cannot
break a line, a header or the display order, email headers that nothing can add to, and SMS that stay GSM-7.

All numbers and names are made up.
"""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from aftercare.channels.base import DeliveryError, OutgoingMessage
from aftercare.channels.console import read_outbox
from aftercare.channels.smtp_email import SmtpEmailChannel
from aftercare.config import Settings, get_settings
from aftercare.contact import check_name, normalize_phone
from aftercare.db import session_scope
from aftercare.errors import InputError
from aftercare.models import AuditEntry, Clinic, Enrollment, OnCallStaff, Patient
from aftercare.protocols import is_gsm7, render, render_email, sms_segments
from cli import main
from tests.cli_helpers import add_clinic, cli_json, enroll, recent
from tests.fakes.smtp import FakeSmtp

TABLES = (Clinic, OnCallStaff, Patient, Enrollment, AuditEntry)
TREATED = recent(hours=1)
CLINICS = {  # region: (clinic phone, time zone)
    "ID": ("+622150001234", "Asia/Jakarta"),
    "GB": ("+442079460000", "Europe/London"),
    "US": ("+12125550100", "America/New_York"),
    "AU": ("+61290000000", "Australia/Sydney"),
}


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=True)


def _counts() -> dict[str, int]:
    with session_scope() as session:
        return {m.__tablename__: session.scalar(select(func.count()).select_from(m)) for m in TABLES}


def _assert_refused(result: Result, *, mentions: str, not_shown: str | None = None) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1 and result.stdout == "", (result.exit_code, result.output)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, repr(result.stderr)
    assert mentions in result.stderr, result.stderr
    if not_shown:
        assert not_shown not in result.stderr


def _clinic_in(region: str) -> dict:
    phone, timezone = CLINICS[region]
    return add_clinic(slug=f"glow-{region.lower()}", phone=phone, timezone=timezone)


# -- 1. a number with the clinic's country code but no "+" -----------------------------------------------------
@pytest.mark.parametrize("region, typed, stored", [
    ("ID", "62811123456", "+62811123456"),
    ("ID", "62812345678", "+62812345678"),
    ("ID", "62878123456", "+62878123456"),
    ("ID", "62 812 1234 5678", "+6281212345678"),
    ("ID", "62-217-654-321", "+62217654321"),  # a Jakarta landline
    ("ID", "62618765432", "+62618765432"),  # a Medan landline
    ("ID", "081234567890", "+6281234567890"),  # the usual local form is still local
    ("GB", "447911123456", "+447911123456"),
    ("GB", "07911 123456", "+447911123456"),
    ("US", "12125550123", "+12125550123"),
    ("US", "(212) 555-0123", "+12125550123"),
    ("AU", "61412345678", "+61412345678"),
    ("AU", "0412 345 678", "+61412345678"),
])
def test_a_number_starting_with_the_clinics_country_code_is_read_as_international(env, region, typed, stored):
    clinic = _clinic_in(region)
    enrolled = enroll(clinic=clinic["slug"], phone=typed)
    assert cli_json("patient", "show", str(enrolled["patient_id"]))["patient"]["phone"] == stored


@pytest.mark.parametrize("typed, stored", [("62811123456", "+62811123456"), ("62315551234", "+62315551234")])
def test_the_country_code_is_never_doubled_for_staff_or_a_clinic_sender(env, typed, stored):
    clinic = add_clinic(sms_from=typed)
    assert clinic["sms_from"] == stored
    staff = cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr Rina", "--phone", typed)
    with session_scope() as session:
        assert session.get(OnCallStaff, staff["id"]).phone == stored


def test_a_number_with_the_country_code_that_is_not_valid_as_international_is_still_read_locally():
    # +62 81112345 is too short for a mobile, so the digits are a local number as before.
    assert normalize_phone("6281112345", region="ID") == normalize_phone("0" + "6281112345", region="ID")


# -- 2. numbers a spreadsheet saved as numbers ------------------------------------------------------------------
SPREADSHEET_FORMS = ["628123456789.0", "6.28123E+11", "6,28123E+11", "6.28123456789e+11", "628123456789,0",
                     "447911123456.0", "4.4791112345E+11", "+6281234567890.0", "81234567890.00", "6.2E11"]


@pytest.mark.parametrize("typed", SPREADSHEET_FORMS)
def test_a_spreadsheet_number_form_is_refused_never_guessed(typed):
    with pytest.raises(InputError, match="spreadsheet") as refused:
        normalize_phone(typed, region="ID")
    assert typed not in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("typed", ["628123456789.0", "6.28123E+11", "6,28123E+11"])
def test_a_spreadsheet_number_form_is_refused_at_enroll_oncall_and_clinic_add(env, typed):
    add_clinic()
    before = _counts()
    base = ["--treatment", "dermal-filler", "--treated-at", TREATED]
    _assert_refused(_invoke("enroll", "--clinic", "glow", "--first-name", "Ayu", "--phone", typed, *base),
                    mentions="spreadsheet", not_shown=typed)
    _assert_refused(_invoke("oncall", "add", "--clinic", "glow", "--name", "Dr Rina", "--phone", typed),
                    mentions="spreadsheet", not_shown=typed)
    _assert_refused(_invoke("clinic", "add", "--name", "Lain", "--slug", "lain", "--timezone", "Asia/Jakarta",
                            "--phone", "+622150009999", "--sms-from", typed), mentions="spreadsheet")
    assert _counts() == before


@pytest.mark.parametrize("typed", ["0812.3456.7890", "+62 812.3456.7890", "(021) 5000-1234", "0812 3456 7890"])
def test_dots_and_spaces_people_write_between_digit_groups_are_still_fine(typed):
    assert normalize_phone(typed, region="ID").startswith("+62")


# -- 5. names that could break a line, a header or the display order -------------------------------------------
ENCODED_NEWLINE = "=?utf-8?q?Ayu=0D=0AReply-To:_x@evil.example?="
BAD_NAMES = {
    "nel": "Ayu\x85Reply-To: x@evil.example",
    "csi": "Ayu\x9b31m",
    "c1-end": "Ayu\x9f",
    "line-separator": "Ayu\u2028Reply-To: x@evil.example",
    "paragraph-separator": "Ayu\u2029Budi",
    "rlo": "Ayu\u202egpj.exe",
    "lre": "\u202aAyu",
    "pdf": "Ayu\u202c",
    "rli": "Ayu\u2067Budi",
    "pdi": "Ayu\u2069",
    "encoded-word-q": ENCODED_NEWLINE,
    "encoded-word-b": "Ayu =?UTF-8?B?" + base64.b64encode(b"\r\nBcc: all@evil.example").decode() + "?=",
}
GOOD_NAMES = ["O\u2019Brien", "Nguy\u1ec5n", "Zo\u00eb", "\u0641\u0627\u0637\u0645\u0629", "\U0001f469\U0001f3fd\u200d\u2695\ufe0f",
              "Ayu = Sari?", "Anne-Marie"]


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_check_name_refuses_line_breaks_controls_bidi_controls_and_encoded_words(name):
    with pytest.raises(InputError, match="first name contains"):
        check_name(name, field="first name", max_length=100)


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_names_in_any_script_with_apostrophes_and_emoji_are_kept(name):
    assert check_name(name, field="first name", max_length=100) == name


@pytest.mark.parametrize("name", BAD_NAMES.values(), ids=BAD_NAMES.keys())
def test_such_names_are_refused_at_enroll_clinic_add_oncall_add_and_staff_actions(env, name):
    add_clinic()
    enroll()
    cli_json("reply", "--from", "+6281234567890", "my lip has gone white and it really hurts")
    before = _counts()
    _assert_refused(_invoke("enroll", "--clinic", "glow", "--first-name", name, "--phone", "+6281234567891",
                            "--treatment", "dermal-filler", "--treated-at", TREATED), mentions="first name")
    _assert_refused(_invoke("clinic", "add", "--name", name, "--slug", "other", "--timezone", "Asia/Jakarta",
                            "--phone", "+622150009999"), mentions="clinic name")
    _assert_refused(_invoke("oncall", "add", "--clinic", "glow", "--name", name, "--phone", "+6281100000001"),
                    mentions="name")
    _assert_refused(_invoke("escalations", "ack", "1", "--by", name), mentions="--by")
    assert _counts() == before
    assert cli_json("escalations", "list")[0]["status"] == "open"


# -- 5. email headers that nothing can add to ---------------------------------------------------------------------
@pytest.fixture
def smtp():
    with FakeSmtp() as server:
        yield server


def _smtp_channel(port: int, tmp_path: Path) -> SmtpEmailChannel:
    return SmtpEmailChannel(Settings(email_channel="smtp", smtp_host="127.0.0.1", smtp_port=port, smtp_timeout=5,
                                     email_from="Klinik <aftercare@klinik.example>", home=tmp_path))


def _page_email(first_name: str) -> OutgoingMessage:
    subject, body = render_email("page.email", "en", first_name=first_name, clinic_name="Glow Clinic",
                                 clinic_phone="+622150001234", patient_phone="+6281234567890", level="EMERGENCY",
                                 treatment="dermal-filler", reply="my lip is white", code="K7Q2", note="")
    return OutgoingMessage(message_id=1, channel="email", to="dr.rina@klinik.example", subject=subject, body=body)


@pytest.mark.parametrize("name", [
    ENCODED_NEWLINE,
    "=?utf-8?q?Ayu=0AReply-To:_x@evil.example?=",
    "Ayu =?UTF-8?B?" + base64.b64encode(b"\r\nReply-To: x@evil.example").decode() + "?=",
    "=?iso-8859-1?q?Ayu=0ABcc:_all@evil.example?=",
    "Ayu\u2028Reply-To: x@evil.example",
    "Ayu\x85Reply-To: x@evil.example",
], ids=["q-crlf", "q-lf", "b-crlf", "latin1-lf", "u2028", "nel"])
def test_a_page_email_whose_subject_would_carry_a_line_break_is_never_sent(smtp, tmp_path, name):
    """Even a name stored before the entry checks existed cannot add a header: the email is refused whole."""
    with pytest.raises(DeliveryError) as refused:
        _smtp_channel(smtp.port, tmp_path).send(_page_email(name))
    assert refused.value.permanent and refused.value.code == "invalid"
    assert smtp.count == 0


def test_a_page_email_with_a_plain_unicode_name_still_goes_out_unchanged(smtp, tmp_path):
    _smtp_channel(smtp.port, tmp_path).send(_page_email("Nguy\u1ec5n O\u2019Brien"))
    assert smtp.wait_for(1)
    [received] = smtp.messages
    assert received["subject"] == "[EMERGENCY] Glow Clinic: call Nguy\u1ec5n O\u2019Brien now (K7Q2)"
    assert "Reply-To" not in str(received)


# -- 6. SMS stay GSM-7 ------------------------------------------------------------------------------------------
TYPOGRAPHIC_CLINIC_NAMES = {
    "curly-apostrophe": ("Dr. Sari\u2019s Clinic", "Dr. Sari's Clinic"),
    "curly-quotes": ("\u201cGlow\u201d Clinic", '"Glow" Clinic'),
    "low-quote": ("\u201eGlow\u201c Klinik", '"Glow" Klinik'),
    "en-dash": ("Glow \u2013 Jakarta", "Glow - Jakarta"),
    "em-dash": ("Glow\u2014Jakarta", "Glow-Jakarta"),
    "ellipsis": ("Glow\u2026", "Glow..."),
    "nbsp": ("Glow\u00a0Clinic", "Glow Clinic"),
    "narrow-nbsp": ("Glow\u202fClinic", "Glow Clinic"),
    "backtick": ("Sari`s Glow", "Sari's Glow"),
    "soft-hyphen": ("Glow\u00adClinic", "GlowClinic"),
}


@pytest.mark.parametrize("name, plain", TYPOGRAPHIC_CLINIC_NAMES.values(), ids=TYPOGRAPHIC_CLINIC_NAMES.keys())
def test_typographic_characters_in_an_sms_become_their_gsm7_forms(name, plain):
    values = {"first_name": "Ayu", "clinic_phone": "+622150001234"}
    text = render("checkin.day1", "en", clinic_name=name, **values)
    assert is_gsm7(text), [c for c in text if not is_gsm7(c)]
    assert text == render("checkin.day1", "en", clinic_name=plain, **values)
    assert sms_segments(text) == 1


def test_patient_words_in_a_page_sms_are_kept_in_gsm7_forms_too():
    text = render("page.sms", "en", first_name="Ayu", clinic_name="Glow", clinic_phone="+622150001234",
                  level="EMERGENCY", treatment="dermal-filler", reply="it\u2019s \u201cwhite\u201d \u2013 help\u2026",
                  code="K7Q2")
    assert is_gsm7(text) and "it's \"white\" - help..." in text


def test_gsm7_letters_are_never_transliterated():
    text = render("checkin.day1", "en", clinic_name="Caf\u00e9 \u00c9l\u00e9gance", first_name="J\u00f6rg \u00d1\u00fc\u00f1ez",
                  clinic_phone="+622150001234")
    assert "J\u00f6rg \u00d1\u00fc\u00f1ez" in text  # ö, Ñ, ü, ñ are GSM-7 letters
    assert is_gsm7(text)


@pytest.mark.parametrize("name", ["\u738b\u5c0f\u660e", "Ayu \U0001f338", "Nguy\u1ec5n"])
def test_an_sms_that_still_needs_ucs2_is_sent_with_a_warning_that_does_not_carry_the_text(caplog, name):
    with caplog.at_level(logging.WARNING, logger="aftercare"):
        text = render("checkin.day1", "en", clinic_name="Glow", first_name=name, clinic_phone="+622150001234")
    assert name in text  # the name is sent as written
    [record] = [r for r in caplog.records if "UCS-2" in r.getMessage()]
    assert record.levelno == logging.WARNING and "checkin.day1" in record.getMessage()
    assert name not in record.getMessage() and "Glow" not in record.getMessage()


def test_a_gsm7_sms_logs_no_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="aftercare"):
        render("checkin.day1", "en", clinic_name="Dr. Sari\u2019s", first_name="Ayu", clinic_phone="+622150001234")
    assert not [r for r in caplog.records if "UCS-2" in r.getMessage()]


@pytest.mark.parametrize("name", ["Glow \u2728 Clinic", "\u738b\u533b\u751f\u7f8e\u5bb9", "Klinik \u0100yu"])
def test_clinic_add_warns_in_one_line_when_the_name_makes_every_sms_ucs2(env, name):
    result = CliRunner().invoke(main, ["clinic", "add", "--name", name, "--slug", "glow", "--timezone",
                                       "Asia/Jakarta", "--phone", "+622150001234", "--json"])
    assert result.exit_code == 0
    [line] = [line for line in result.stderr.splitlines() if "on-call" not in line]  # a new clinic has no on-call
    assert line.startswith("warning: ") and "UCS-2" in line
    assert cli_json("clinic", "list")[0]["name"] == name  # stored as given; only the warning is added


@pytest.mark.parametrize("name", ["Dr. Sari\u2019s \u201cGlow\u201d \u2013 Jakarta", "Caf\u00e9 \u00c9l\u00e9gance"])
def test_clinic_add_does_not_warn_for_quotes_dashes_or_gsm7_letters(env, name):
    result = CliRunner().invoke(main, ["clinic", "add", "--name", name, "--slug", "glow", "--timezone",
                                       "Asia/Jakarta", "--phone", "+622150001234", "--json"])
    assert result.exit_code == 0 and "UCS-2" not in result.stderr


def test_reminders_from_a_clinic_with_a_curly_apostrophe_go_out_as_one_gsm7_segment(env):
    cli_json("clinic", "add", "--name", "Dr. Sari\u2019s Skin \u2013 Kemang", "--slug", "glow", "--timezone",
             "Asia/Jakarta", "--phone", "+622150001234", "--quiet-hours", "00:00-00:00")
    treated = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
    enroll(treated_at=treated)
    assert cli_json("dispatch", "--once")["sent"] >= 1
    sms = [m["body"] for m in read_outbox(get_settings()) if m["channel"] == "sms"]
    assert sms and all(is_gsm7(body) and "Dr. Sari's Skin - Kemang" in body for body in sms)


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x","a")', "-cmd", "+SUM(1)", "@A1"])
def test_a_name_a_spreadsheet_would_run_is_refused(name):
    from aftercare.contact import check_name
    from aftercare.errors import InputError

    with pytest.raises(InputError, match="formula"):
        check_name(name, field="first name", max_length=100)
