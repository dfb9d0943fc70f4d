"""Care protocols as data: one YAML file per treatment, message texts per language, and their validation."""

from aftercare.protocols.loader import (
    TREATMENTS,
    list_protocols,
    load_protocol,
    load_protocol_file,
    protocol_file_errors,
)
from aftercare.protocols.model import After, DayAt, Protocol, ProtocolError, RedFlag, Step, When, parse_duration
from aftercare.protocols.templates import (
    LANGUAGES,
    EmailTemplate,
    TemplateCatalog,
    is_gsm7,
    load_catalog,
    render,
    render_email,
    sms_segments,
)

__all__ = [
    "LANGUAGES",
    "TREATMENTS",
    "After",
    "DayAt",
    "EmailTemplate",
    "Protocol",
    "ProtocolError",
    "RedFlag",
    "Step",
    "TemplateCatalog",
    "When",
    "is_gsm7",
    "list_protocols",
    "load_catalog",
    "load_protocol",
    "load_protocol_file",
    "parse_duration",
    "protocol_file_errors",
    "render",
    "render_email",
    "sms_segments",
]
