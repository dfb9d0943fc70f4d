"""The review inbox on the web: GET /inbox, and Done / Escalate on a review item.

One clinic only, the signed-in staff member's: its open review items (replies a person must read) and its open or
acknowledged escalations, in one list, most serious then newest first. Done and Escalate call the same services
as `aftercare inbox done|escalate`, audited with the staff member's name. An item of another clinic is 404 and
nothing changes.

Two parts come from other modules when present (imported where used, so the inbox works without them): photo
links (aftercare.inbound.media.photo_urls) and each escalation's signed page link
(aftercare.staff.links.escalation_link).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from aftercare.config import get_settings
from aftercare.errors import AftercareError
from aftercare.escalation.views import escalation_view
from aftercare.models import Escalation, EscalationStatus, InboundMessage, ReviewItem
from aftercare.review.service import escalate_review_item, list_inbox, mark_done
from aftercare.review.views import review_view
from aftercare.staff import blueprint
from aftercare.staff.auth import csrf_token, login_required

# Most serious first; a review item with no level (an unplaced reply) sorts after the routine ones.
_SEVERITY = {"emergency": 0, "urgent": 1, "routine": 2, "ok": 3}
ESCALATE_LEVELS = ("emergency", "urgent")
MAX_NOTE = 2000


@blueprint.get("/inbox")
@login_required
def inbox() -> str:
    items = inbox_items(g.db, clinic_id=g.clinic.id, tz=ZoneInfo(g.clinic.timezone))
    return render_template("inbox.html", items=items, staff=g.staff, clinic=g.clinic, csrf_token=csrf_token(),
                           levels=ESCALATE_LEVELS)


@blueprint.post("/inbox/<int:item_id>/done")
@login_required
def inbox_done(item_id: int) -> Response:
    item = _own_item(item_id)
    note = request.form.get("note", "")[:MAX_NOTE]
    try:
        mark_done(g.db, item, by=g.staff.name, note=note)
    except AftercareError as exc:  # already done by someone else: say so, change nothing
        flash(str(exc), "error")
    else:
        flash(f"Item {item_id} is done.", "status")
    return redirect(url_for("staff.inbox"), code=303)


@blueprint.post("/inbox/<int:item_id>/escalate")
@login_required
def inbox_escalate(item_id: int) -> Response:
    item = _own_item(item_id)
    level = request.form.get("level", "")
    if level not in ESCALATE_LEVELS:
        abort(400)
    try:
        escalation = escalate_review_item(g.db, item, by=g.staff.name, level=level)
    except AftercareError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Item {item_id} escalated ({level}): on-call is being paged (escalation {escalation.id}).", "status")
    return redirect(url_for("staff.inbox"), code=303)


_MAX_ID = 2**31 - 1  # an id past the database's integer is nobody's item, not an error


def _own_item(item_id: int) -> ReviewItem:
    """The review item if it is the signed-in clinic's; 404 for an unknown id and for another clinic's alike."""
    item = g.db.get(ReviewItem, item_id) if 0 < item_id <= _MAX_ID else None
    if item is None or item.clinic_id != g.clinic.id:
        abort(404)
    return item


def inbox_items(session: Session, *, clinic_id: int, tz: ZoneInfo) -> list[dict[str, Any]]:
    """What the inbox page lists for one clinic: dicts with "kind" ("review" or "escalation"), the review or
    escalation view, "words" (the patient's messages: [{"body", "at", "photos": [url]}]), display times in the
    clinic's zone, and for an escalation its page "link" (None without aftercare.staff.links). Most serious
    first, then newest."""
    reviews = list_inbox(session, clinic_id=clinic_id)
    escalations = list(session.scalars(
        select(Escalation).where(Escalation.clinic_id == clinic_id,
                                 Escalation.status.in_([EscalationStatus.OPEN, EscalationStatus.ACKNOWLEDGED]))))
    replies: dict[int, list[InboundMessage]] = defaultdict(list)
    if escalations:
        query = (select(InboundMessage).where(InboundMessage.escalation_id.in_([e.id for e in escalations]))
                 .order_by(InboundMessage.received_at, InboundMessage.id))
        for reply in session.scalars(query):
            replies[reply.escalation_id].append(reply)
    photos = _photo_urls(session, [r.inbound_id for r in reviews] + [m.id for ms in replies.values() for m in ms])

    def words(messages: list[InboundMessage]) -> list[dict[str, Any]]:
        return [{"body": m.body, "at": _local(m.received_at, tz), "num_media": m.num_media,
                 "photos": photos.get(m.id, [])} for m in messages]

    items = []
    for item in reviews:
        items.append({"kind": "review", **review_view(item), "words": words([item.inbound]),
                      "received": _local(item.inbound.received_at, tz), "due": _local(item.due_at, tz),
                      "overdue": _aware(item.due_at) < datetime.now(UTC),
                      "_sort": (_SEVERITY.get(item.level or "", 9), -_aware(item.inbound.received_at).timestamp())})
    for escalation in escalations:
        items.append({"kind": "escalation", **escalation_view(escalation), "words": words(replies[escalation.id]),
                      "opened": _local(escalation.opened_at, tz), "link": _escalation_link(escalation.id),
                      "_sort": (_SEVERITY.get(escalation.level, 9), -_aware(escalation.opened_at).timestamp())})
    return sorted(items, key=lambda entry: entry["_sort"])


def _photo_urls(session: Session, inbound_ids: list[int]) -> dict[int, list[str]]:
    try:
        from aftercare.inbound.media import photo_urls
    except ImportError:  # photos are issue 9's W3 part: without it the inbox says "N photos" and shows none
        return {}
    return photo_urls(session, inbound_ids) if inbound_ids else {}


def _escalation_link(escalation_id: int) -> str:
    """The escalation's page for the signed-in staff member: it opens only in their session, and what they do
    there is in the audit log under their name."""
    from aftercare.staff.links import escalation_link

    return escalation_link(escalation_id, None, get_settings(), account_id=g.staff.id)


def _aware(value: datetime) -> datetime:
    """Stored times are UTC; SQLite gives them back without a zone."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _local(value: datetime | None, tz: ZoneInfo) -> str | None:
    """"Wed 25 Nov 14:30" in the clinic's time zone, for people."""
    return _aware(value).astimezone(tz).strftime("%a %d %b %H:%M") if value else None
