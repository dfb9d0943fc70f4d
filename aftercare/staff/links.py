"""The link in a page: a signed, expiring address of one escalation's page, for the one person paged.

The link is that clinician's credential for that escalation only: the token names the escalation and the on-call
person it was sent to (None: the clinic's own phone, paged when nobody is on call), and nothing else opens it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aftercare.config import Settings, get_settings
from aftercare.staff.signing import InvalidToken, sign, unsign

PURPOSE = "escalation"


@dataclass(frozen=True)
class EscalationLink:
    escalation_id: int
    staff_id: int | None  # the on-call person paged; None for the clinic's own phone
    # A link drawn in the inbox for a signed-in web account: good only in that account's own signed-in session.
    account_id: int | None = None


def escalation_token(escalation_id: int, staff_id: int | None, settings: Settings | None = None, *,
                     account_id: int | None = None) -> str:
    """The signed token for `escalation_id`, sent to `staff_id` (an OnCallStaff id, or None), or shown in the
    inbox to the web account `account_id`."""
    payload = {"e": escalation_id, "s": staff_id, **({"w": account_id} if account_id else {})}
    return sign(PURPOSE, payload, settings=settings)


def escalation_link(escalation_id: int, staff_id: int | None, settings: Settings | None = None, *,
                    account_id: int | None = None) -> str:
    """The absolute URL of the escalation page: AFTERCARE_PUBLIC_URL + /e/<token>."""
    settings = settings or get_settings()
    token = escalation_token(escalation_id, staff_id, settings, account_id=account_id)
    return f"{settings.public_url.rstrip('/')}/e/{token}"


def read_escalation_token(token: str, settings: Settings | None = None) -> EscalationLink:
    """What a link's token names, when it is ours, unaltered, for an escalation page and at most
    AFTERCARE_PAGE_LINK_HOURS old. Raises InvalidToken otherwise (also for a payload of the wrong shape)."""
    settings = settings or get_settings()
    payload = unsign(PURPOSE, token, max_age_seconds=settings.page_link_hours * 3600, settings=settings)
    if not isinstance(payload, dict):
        raise InvalidToken("invalid escalation link")
    escalation_id, staff_id, account_id = payload.get("e"), payload.get("s"), payload.get("w")
    if not _is_id(escalation_id) or not all(v is None or _is_id(v) for v in (staff_id, account_id)):
        raise InvalidToken("invalid escalation link")
    return EscalationLink(escalation_id, staff_id, account_id)


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
