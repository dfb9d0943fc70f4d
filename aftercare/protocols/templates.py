"""Message texts per language, their placeholders, rendering, and SMS segment arithmetic."""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aftercare.protocols.model import ProtocolError, read_yaml

log = logging.getLogger(__name__)

LANGUAGES: tuple[str, ...] = ("en", "id")
TEMPLATES_DIR = Path(__file__).parent / "templates"

BASE_PLACEHOLDERS = frozenset({"first_name", "clinic_name", "clinic_phone"})
_PAGE_PLACEHOLDERS = BASE_PLACEHOLDERS | {"level", "treatment", "reply", "code", "note"}
EXTRA_PLACEHOLDERS: Mapping[str, frozenset[str]] = {
    "reply.routine": BASE_PLACEHOLDERS | {"tip"},
    "page.sms": _PAGE_PLACEHOLDERS,
    "page.email": _PAGE_PLACEHOLDERS | {"patient_phone", "link"},
    "page.review.sms": BASE_PLACEHOLDERS | {"item", "reason", "minutes"},
    "page.review.email": BASE_PLACEHOLDERS | {"item", "reason", "minutes"},
}
# Placeholders a caller may leave out; they render as the default.
OPTIONAL_VALUES: Mapping[str, str] = {"tip": "", "note": "", "link": ""}

# Texts the reply and escalation code needs besides the protocol steps; every language must have them.
SERVICE_SMS = (
    "optout.confirm",
    "optin.confirm",
    "help",
    "reply.ok",
    "reply.routine",
    "safety.emergency",
    "safety.urgent",
    "unknown.safety",
    "reply.holding",
    "page.sms",
    "page.review.sms",
)
SERVICE_EMAIL = ("page.email", "page.review.email")
# The subject used when an SMS text goes out by email (an email-only patient, an SMS fallback).
DEFAULT_SUBJECT = "email.subject"
# A check-in's closed red-flag question ends with how to answer it by SMS. Nothing reads email replies, so the same
# check-in by email asks the patient to call instead (issue 8: an email never asks "Reply YES or NO").
ANSWER_BY_SMS, ANSWER_BY_EMAIL = "checkin.answer.sms", "checkin.answer.email"

# GSM 03.38: anything outside these two tables switches the whole SMS to UCS-2 (70 characters, not 160).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")  # each costs two septets (escape + char)
_GSM7 = GSM7_BASIC | GSM7_EXTENSION
# Typography that word processors and phones put in names ("Dr. Sari’s Clinic"), with the GSM-7 form an SMS
# gets instead: one such character would make the whole SMS UCS-2, 70 characters a part instead of 160.
# Letters are never changed (a library like unidecode would also turn GSM letters such as é or ñ into e, n).
_TYPOGRAPHY = str.maketrans({
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u0060\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    "\u2026": "...",
    **dict.fromkeys("\u00a0\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000", " "),
    **dict.fromkeys("\u00ad\u200b\u2060\ufeff", None),  # invisible: soft hyphen, zero-width space, joiners
})


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    body: str


Template = str | EmailTemplate


@dataclass(frozen=True)
class TemplateCatalog:
    """language -> template key -> text; validated as a whole when loaded."""

    texts: Mapping[str, Mapping[str, Template]]
    source: Path

    def get(self, key: str, language: str) -> Template:
        texts = self.texts.get(normalise_language(language))
        if texts is None:
            raise ProtocolError(f"unknown language {language!r}; choose one of: {', '.join(self.texts)}")
        if key not in texts:
            raise ProtocolError(f"no template '{key}' in {language}.yaml")
        return texts[key]

    def missing_in(self, key: str) -> list[str]:
        """The languages that lack this template key."""
        return [language for language, texts in self.texts.items() if key not in texts]


def normalise_language(language: str) -> str:
    # Patients' records may say "en-GB" or "id_ID"; the primary subtag picks the texts.
    return re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0] if isinstance(language, str) else ""


# Rendering -------------------------------------------------------------------------------------------------


def render(template_key: str, language: str, **values: str) -> str:
    """Render an SMS (in GSM-7 forms of quotes, dashes and spaces) or, for an email template, its body.

    A text that still needs UCS-2 (a name in another script, an emoji) is sent as it is, with a WARNING log
    that names the template, not the text."""
    template = default_catalog().get(template_key, language)
    if isinstance(template, EmailTemplate):
        return _fill(template.body, template_key, values)
    text = sms_form(_fill(template, template_key, values))
    if not is_gsm7(text):
        log.warning("sms template=%s language=%s needs UCS-2: %d segment(s)", template_key, language,
                    sms_segments(text))
    return text


def render_email(template_key: str, language: str, **values: str) -> tuple[str, str]:
    """Render (subject, body); an SMS text gets the language's default subject."""
    catalog = default_catalog()
    template = catalog.get(template_key, language)
    if isinstance(template, EmailTemplate):
        return _fill(template.subject, template_key, values), _fill(template.body, template_key, values)
    subject = catalog.get(DEFAULT_SUBJECT, language)
    assert isinstance(subject, str)  # the catalog validates this on load
    return _fill(subject, DEFAULT_SUBJECT, values), _by_email(_tidy_sms(_fill(template, template_key, values)),
                                                              language, values)


def _by_email(text: str, language: str, values: Mapping[str, str]) -> str:
    """An SMS text made fit for email: a closed question's "Reply YES or NO" becomes "If so, call us now"."""
    catalog = default_catalog()
    answer_by_sms = str(catalog.get(ANSWER_BY_SMS, language))
    if not text.endswith(answer_by_sms):
        return text
    return text.removesuffix(answer_by_sms) + _fill(str(catalog.get(ANSWER_BY_EMAIL, language)), ANSWER_BY_EMAIL,
                                                      values)


@cache  # template texts are few and fixed; every message rendered asks again
def placeholders(text: str) -> frozenset[str]:
    """The placeholder names a template text uses."""
    return frozenset(field for _, field, _, _ in string.Formatter().parse(text) if field is not None)


def _fill(text: str, key: str, values: Mapping[str, str]) -> str:
    needed = placeholders(text)
    missing = sorted(name for name in needed - values.keys() if name not in OPTIONAL_VALUES)
    if missing:
        raise ProtocolError(f"template '{key}' needs a value for: {', '.join(missing)}")
    merged = {name: str(values.get(name, OPTIONAL_VALUES.get(name, ""))) for name in needed}
    # format_map never re-reads the values, so a patient's name with braces in it is printed as is.
    return text.format_map(merged)


def _tidy_sms(text: str) -> str:
    # An empty optional value (like {tip}) leaves a double space, which would cost a character for nothing.
    return re.sub(r" {2,}", " ", text).strip()


# SMS segments ----------------------------------------------------------------------------------------------


def sms_form(text: str) -> str:
    """The text with typographic quotes, dashes, ellipses and special spaces in their GSM-7 forms."""
    return _tidy_sms(text.translate(_TYPOGRAPHY))


def non_gsm7(text: str) -> list[str]:
    """The characters of `text` (once each, in order) that make an SMS of it UCS-2 even in its sms_form."""
    return list(dict.fromkeys(char for char in sms_form(text) if not is_gsm7(char)))


def is_gsm7(text: str) -> bool:
    return _GSM7.issuperset(text)


def sms_segments(text: str) -> int:
    """How many SMS parts a carrier bills for this text (0 for an empty text)."""
    if not text:
        return 0
    if is_gsm7(text):
        units = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return _pack(units, single=160, multi=153)
    # UCS-2 counts UTF-16 code units: an emoji is a surrogate pair, two units that are never split.
    units = [len(char.encode("utf-16-le")) // 2 for char in text]
    return _pack(units, single=70, multi=67)


def _pack(units: list[int], *, single: int, multi: int) -> int:
    if sum(units) <= single:
        return 1
    # A multipart SMS loses room to its header, and an escape pair or surrogate pair never straddles two parts.
    segments, used = 1, 0
    for unit in units:
        if used + unit > multi:
            segments, used = segments + 1, 0
        used += unit
    return segments


# Loading and validation ------------------------------------------------------------------------------------


@cache
def default_catalog() -> TemplateCatalog:
    return load_catalog(TEMPLATES_DIR)


def load_catalog(directory: Path, languages: Iterable[str] = LANGUAGES) -> TemplateCatalog:
    """Load <directory>/<language>.yaml for every language, and check them together."""
    texts = {language: _load_language(Path(directory) / f"{language}.yaml") for language in languages}
    catalog = TemplateCatalog(texts=texts, source=Path(directory))
    for key in (*SERVICE_SMS, *SERVICE_EMAIL, DEFAULT_SUBJECT, ANSWER_BY_SMS, ANSWER_BY_EMAIL):
        for language in catalog.missing_in(key):
            raise ProtocolError(f"{language}.yaml: template '{key}': missing (the reply and paging code needs it)")
    _check_kinds(catalog)
    return catalog


def _check_kinds(catalog: TemplateCatalog) -> None:
    for language, texts in catalog.texts.items():
        for key in (*SERVICE_SMS, DEFAULT_SUBJECT):
            if not isinstance(texts[key], str):
                raise ProtocolError(f"{language}.yaml: template '{key}': expected a plain text, not subject/body")
        for key in SERVICE_EMAIL:
            if not isinstance(texts[key], EmailTemplate):
                raise ProtocolError(f"{language}.yaml: template '{key}': expected a mapping with subject and body")


def _load_language(path: Path) -> dict[str, Template]:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ProtocolError(f"{path.name}: expected a mapping of template key -> text")
    return {str(key): _parse_template(path.name, str(key), value) for key, value in raw.items()}


def _parse_template(filename: str, key: str, value: object) -> Template:
    where = f"{filename}: template '{key}'"
    if isinstance(value, str):
        _check_text(where, key, value)
        return value
    if isinstance(value, dict) and set(value) == {"subject", "body"}:
        for part in ("subject", "body"):
            if not isinstance(value[part], str) or not value[part].strip():
                raise ProtocolError(f"{where}: field '{part}': expected a non-empty text")
            _check_text(f"{where}: field '{part}'", key, value[part])
        return EmailTemplate(subject=value["subject"].strip(), body=value["body"])
    raise ProtocolError(f"{where}: expected a text (SMS) or a mapping with exactly subject and body (email)")


def _check_text(where: str, key: str, text: str) -> None:
    if not text.strip():
        raise ProtocolError(f"{where}: empty text")
    allowed = EXTRA_PLACEHOLDERS.get(key, BASE_PLACEHOLDERS)
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise ProtocolError(f"{where}: broken braces ({exc}); write a literal brace as {{{{ or }}}}") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in allowed or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ProtocolError(f"{where}: unknown placeholder {shown}; allowed: {', '.join(sorted(allowed))}")
