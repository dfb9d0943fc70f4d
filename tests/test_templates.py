"""Message texts: every one renders in every language, SMS texts stay GSM-7 and within one segment."""

from __future__ import annotations

import string

import pytest

from aftercare.protocols import LANGUAGES, ProtocolError, is_gsm7, list_protocols, render, render_email, sms_segments
from aftercare.protocols.templates import (
    ANSWER_BY_SMS,
    SERVICE_EMAIL,
    SERVICE_SMS,
    EmailTemplate,
    default_catalog,
    load_catalog,
)

# The sizing rule: a 10-letter first name, a 20-letter clinic name and a full Indonesian mobile number.
SAMPLE = {
    "first_name": "Abcdefghij",
    "clinic_name": "Klinik Kulit Sehat 1",
    "clinic_phone": "+6281234567890",
    "patient_phone": "+6289876543210",
    "level": "emergency",
    "treatment": "dermal-filler",
    "reply": "my cheek went white and it hurts a lot",
    "code": "K7Q2",
    "tip": "",
    "item": "12345",
    "reason": "an unclear answer to a red-flag question",
    "minutes": "125",
}
# Texts to a clinician may run to two segments; nothing sent to a patient should. The red-flag check-ins
# (a closed question plus the clinic's phone) fit one segment at this sizing too, so they get no exception.
TWO_SEGMENTS_ALLOWED = {"page.sms", "page.review.sms"}
# How each language asks for the one-word answer to a red-flag question; it ends the check-in.
RED_FLAG_ENDINGS = {"en": "Reply YES or NO", "id": "Balas YA atau TIDAK"}


def all_templates() -> list[tuple[str, str, str | EmailTemplate]]:
    catalog = default_catalog()
    return [(language, key, text) for language in LANGUAGES for key, text in catalog.texts[language].items()]


def sms_templates() -> list[tuple[str, str, str]]:
    return [(language, key, text) for language, key, text in all_templates() if isinstance(text, str)]


def test_sample_values_match_the_sizing_rule() -> None:
    assert len(SAMPLE["first_name"]) == 10 and len(SAMPLE["clinic_name"]) == 20


@pytest.mark.parametrize(("language", "key", "text"), all_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_template_renders_without_leftover_braces(language: str, key: str, text: object) -> None:
    if isinstance(text, EmailTemplate):
        subject, body = render_email(key, language, **SAMPLE)
        assert subject and body and "{" not in subject + body and "}" not in subject + body
        assert "\n" not in subject
    else:
        rendered = render(key, language, **SAMPLE)
        assert rendered and "{" not in rendered and "}" not in rendered


@pytest.mark.parametrize(("language", "key", "text"), sms_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_sms_is_gsm7_and_fits_one_segment(language: str, key: str, text: str) -> None:
    rendered = render(key, language, **SAMPLE)
    assert is_gsm7(rendered), [char for char in rendered if not is_gsm7(char)]
    limit = 2 if key in TWO_SEGMENTS_ALLOWED else 1
    assert sms_segments(rendered) <= limit, f"{len(rendered)} characters: {rendered}"


@pytest.mark.parametrize(("language", "key", "text"), all_templates(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_patient_text_says_how_to_reach_the_clinic(language: str, key: str, text: object) -> None:
    if key.startswith(("page.", "checkin.answer.")) or key in ("email.subject", "unknown.safety"):
        return  # staff texts, a subject, the sender-unknown text, and fragments of check-ins
    body = text.body if isinstance(text, EmailTemplate) else text
    assert "{clinic_phone}" in body


def test_service_texts_exist_in_every_language() -> None:
    catalog = default_catalog()
    for language in LANGUAGES:
        for key in SERVICE_SMS:
            assert isinstance(catalog.get(key, language), str)
        for key in SERVICE_EMAIL:
            assert isinstance(catalog.get(key, language), EmailTemplate)


def test_every_protocol_template_exists_in_every_language() -> None:
    catalog = default_catalog()
    for protocol in list_protocols():
        for step in protocol.steps:
            assert catalog.missing_in(step.template) == []


def red_flag_templates() -> set[str]:
    return {step.template for protocol in list_protocols() for step in protocol.steps if step.red_flag}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_red_flag_check_in_ends_with_one_closed_question(language: str) -> None:
    assert set(RED_FLAG_ENDINGS) == set(LANGUAGES)
    for key in red_flag_templates():
        rendered = render(key, language, **SAMPLE)
        question = rendered.rsplit(". ", 1)[-1]
        # A one-word YES must have exactly one question to answer: the last one, asked just before the ending.
        assert rendered.endswith("? " + RED_FLAG_ENDINGS[language]), rendered
        assert rendered.count("?") == 1 and question.startswith(("Any ", "Ada ")), rendered
        assert SAMPLE["clinic_phone"] in rendered


@pytest.mark.parametrize("language", LANGUAGES)
def test_only_red_flag_check_ins_ask_for_a_yes_or_no(language: str) -> None:
    # A text asking for YES or NO on a step without a red flag would have its YES read as nothing in particular.
    used = red_flag_templates()
    for key, text in default_catalog().texts[language].items():
        if isinstance(text, str) and RED_FLAG_ENDINGS[language] in text and key != ANSWER_BY_SMS:
            assert key in used, key


@pytest.mark.parametrize("language", LANGUAGES)
def test_service_texts_carry_their_instructions(language: str) -> None:
    assert "START" in render("optout.confirm", language, **SAMPLE)
    assert "STOP" in render("optin.confirm", language, **SAMPLE)
    help_text = render("help", language, **SAMPLE)
    assert "STOP" in help_text and SAMPLE["clinic_name"] in help_text and SAMPLE["clinic_phone"] in help_text
    assert "ACK K7Q2" in render("page.sms", language, **SAMPLE)
    subject, body = render_email("page.email", language, **SAMPLE)
    assert "K7Q2" in subject and "ACK K7Q2" in body and SAMPLE["patient_phone"] in body


def test_emergency_reply_sends_the_patient_to_emergency_care() -> None:
    assert "emergency" in render("safety.emergency", "en", **SAMPLE)
    indonesian = render("safety.emergency", "id", **SAMPLE)
    assert "112" in indonesian and "IGD" in indonesian


def test_safety_reply_to_an_unknown_number_needs_no_values() -> None:
    assert "emergency" in render("unknown.safety", "en")
    assert "112" in render("unknown.safety", "id")


def test_safety_replies_need_only_the_clinic() -> None:
    # A safety reply must never fail to render for want of a patient detail.
    for language in LANGUAGES:
        for key in ("safety.emergency", "safety.urgent", "optout.confirm", "optin.confirm", "help"):
            render(key, language, clinic_name="Klinik", clinic_phone="+62211234567")


def test_routine_reply_takes_an_optional_tip() -> None:
    without = render("reply.routine", "en", **{**SAMPLE, "tip": ""})
    with_tip = render("reply.routine", "en", **{**SAMPLE, "tip": "Sleep with your head raised."})
    assert "  " not in without
    assert "help. Sleep with your head raised. Worse?" in with_tip


def test_an_sms_template_sent_by_email_gets_a_default_subject() -> None:
    subject, body = render_email("checkin.day1", "en", **SAMPLE)
    assert subject == f"{SAMPLE['clinic_name']}: your aftercare"
    assert body == render("checkin.day1", "en", **SAMPLE)


def test_render_of_an_email_template_gives_its_body() -> None:
    assert render("dermal-filler.summary", "en", **SAMPLE) == render_email("dermal-filler.summary", "en", **SAMPLE)[1]


def test_regional_language_tags_use_the_primary_language() -> None:
    assert render("help", "id-ID", **SAMPLE) == render("help", "id", **SAMPLE)
    assert render("help", "EN_gb", **SAMPLE) == render("help", "en", **SAMPLE)


def test_unknown_key_language_or_missing_value_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="no template 'nope'"):
        render("nope", "en", **SAMPLE)
    with pytest.raises(ProtocolError, match="unknown language 'fr'"):
        render("help", "fr", **SAMPLE)
    with pytest.raises(ProtocolError, match="needs a value for: clinic_phone"):
        render("help", "en", clinic_name="Klinik")


def test_values_are_printed_as_given_even_with_braces() -> None:
    assert "{clinic_phone}" in render("reply.ok", "en", **{**SAMPLE, "first_name": "{clinic_phone}"})


def test_email_texts_use_only_plain_characters() -> None:
    # Email can carry anything, but curly quotes pasted from a word processor are a sign of an unreviewed edit.
    for _, _, text in all_templates():
        if isinstance(text, EmailTemplate):
            assert all(char in string.printable for char in text.subject + text.body)


# Catalog validation --------------------------------------------------------------------------------------


def write_catalog(tmp_path, en_extra: str = "", id_extra: str = "") -> None:
    source = default_catalog().source
    (tmp_path / "en.yaml").write_text((source / "en.yaml").read_text(encoding="utf-8") + en_extra, encoding="utf-8")
    (tmp_path / "id.yaml").write_text((source / "id.yaml").read_text(encoding="utf-8") + id_extra, encoding="utf-8")


def test_unknown_placeholder_names_file_and_template(tmp_path) -> None:
    write_catalog(tmp_path, id_extra='custom.hello: "Halo {nama}, telp {clinic_phone}"\n')
    with pytest.raises(ProtocolError, match=r"id\.yaml: template 'custom\.hello': unknown placeholder \{nama\}"):
        load_catalog(tmp_path)


def test_format_specs_and_broken_braces_are_refused(tmp_path) -> None:
    write_catalog(tmp_path, en_extra='custom.spec: "Hi {first_name!r}"\n')
    with pytest.raises(ProtocolError, match=r"unknown placeholder \{first_name!r\}"):
        load_catalog(tmp_path)
    write_catalog(tmp_path, en_extra='custom.brace: "Hi {first_name"\n')
    with pytest.raises(ProtocolError, match="en.yaml: template 'custom.brace': broken braces"):
        load_catalog(tmp_path)


def test_extra_placeholders_are_allowed_only_where_listed(tmp_path) -> None:
    write_catalog(tmp_path, en_extra='custom.tip: "Hi {first_name}. {tip}"\n')
    with pytest.raises(ProtocolError, match=r"custom\.tip': unknown placeholder \{tip\}"):
        load_catalog(tmp_path)


def test_missing_service_text_is_refused(tmp_path) -> None:
    write_catalog(tmp_path)
    text = (tmp_path / "id.yaml").read_text(encoding="utf-8")
    (tmp_path / "id.yaml").write_text(text.replace("\nhelp:", "\nhelp-old:"), encoding="utf-8")
    with pytest.raises(ProtocolError, match="id.yaml: template 'help': missing"):
        load_catalog(tmp_path)


def test_email_template_needs_subject_and_body(tmp_path) -> None:
    write_catalog(tmp_path, en_extra='custom.mail:\n  subject: "Hi"\n  text: "Call {clinic_phone}"\n')
    with pytest.raises(
        ProtocolError, match="custom.mail': expected a text .* or a mapping with exactly subject and body"
    ):
        load_catalog(tmp_path)


def test_bad_yaml_in_templates_names_the_file(tmp_path) -> None:
    write_catalog(tmp_path, en_extra='broken: "unterminated\n')
    with pytest.raises(ProtocolError, match="en.yaml: not valid YAML"):
        load_catalog(tmp_path)


# SMS segments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters cost two septets each
        ("€" * 81, 2),
        ("a" * 159 + "€", 2),
        ("a" * 152 + "€" + "a" * 152, 3),  # an escape pair is never split across two parts
        ("é£¥ÄÖÑÜ§¿àñ@$_" * 10, 1),
        ("ā" * 70, 1),  # one non-GSM character makes the whole text UCS-2
        ("ā" * 71, 2),
        ("a" * 69 + "\u00a0", 1),  # a non-breaking space
        ("a" * 70 + "\u2019", 2),  # a curly apostrophe
        ("a" * 134 + "ā", 3),
        ("😀" * 35, 1),  # an emoji is two UTF-16 units
        ("😀" * 36, 2),
        ("a" * 66 + "😀" + "a" * 66, 3),  # a surrogate pair is never split
    ],
)
def test_sms_segments(text: str, segments: int) -> None:
    assert sms_segments(text) == segments


def test_gsm7_detection() -> None:
    assert is_gsm7("Hi Kak Budi, call +62 812-3456 (24h) @ 50% off? [ok] {x} ~|^€\\")
    for char in ("\u2019", "\u201c", "\u00a0", "\u2014", "ç", "ā", "😀", "`"):
        assert not is_gsm7(f"text {char}"), repr(char)
