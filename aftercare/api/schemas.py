"""The API's request body, checked by pydantic: no unknown fields, JSON types as declared (strict: "true" is not a
boolean, 5 is not a string). What the values mean (a valid phone, a known treatment) is checked by the same
service code as `aftercare enroll`, so the API's messages are the CLI's."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EnrollmentIn(BaseModel):
    """POST /api/v1/enrollments: the fields of `aftercare enroll`."""

    model_config = ConfigDict(extra="forbid", strict=True, title="EnrollmentRequest", json_schema_extra={
        "examples": [{"first_name": "Ayu", "phone": "+6281234567890", "email": "ayu@example.com",
                      "treatment": "dermal-filler", "treated_at": "2026-11-25T14:30:00+07:00", "sms_consent": True}]})

    first_name: str = Field(max_length=1000, description="The patient's first name (at most 100 characters)")
    phone: str = Field(max_length=64, description="Mobile number, international (+6281234567890) or local to "
                                                  "the clinic's country")
    email: str | None = Field(default=None, max_length=254)
    timezone: str | None = Field(default=None, max_length=64,
                                 description="IANA name, e.g. Asia/Jakarta; default: the clinic's")
    language: str | None = Field(default=None, max_length=16,
                                 description="Language of the messages: en or id; default: as on file (en for a new "
                                             "patient)")
    treatment: str = Field(max_length=64, description="A protocol key, e.g. dermal-filler (`aftercare protocols "
                                                      "list`)")
    treated_at: str = Field(max_length=64, description="ISO 8601 with a UTC offset, e.g. 2026-11-25T14:30:00+07:00",
                            json_schema_extra={"format": "date-time"})
    sms_consent: bool | None = Field(default=None, description="The patient's answer today: true also lifts an "
                                                               "earlier STOP; absent or null: as on file (yes for "
                                                               "a new patient)")
    email_consent: bool | None = Field(default=None, description="As sms_consent, for email")

    def idempotency_view(self) -> dict:
        """What makes two requests "the same body": the values, with defaults and absent fields alike."""
        return self.model_dump(exclude_defaults=True)
