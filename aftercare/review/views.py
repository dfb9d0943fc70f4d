"""What the inbox shows of a review item."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import object_session

from aftercare.inbound.media import photo_counts
from aftercare.models import ReviewItem
from aftercare.views import candidates_view, iso, who


def review_view(item: ReviewItem) -> dict[str, Any]:
    """`candidates`: the patients sharing the sender's phone when the reply could not be attributed; `photos`: how
    many of the `num_media` photos sent are stored (aftercare.inbound.media.photo_urls has their addresses)."""
    inbound = item.inbound
    session = object_session(item)
    candidates = candidates_view(session, item.patient_ids)
    first_name = item.patient.first_name if item.patient else None
    return {"id": item.id, "clinic": item.clinic.slug, "reason": item.reason, "level": item.level,
            "status": item.status, "patient_id": item.patient_id,
            "first_name": who(first_name, candidates) if (first_name or candidates) else None,
            "candidates": candidates,
            "from": inbound.from_phone, "body": inbound.body, "num_media": inbound.num_media,
            "photos": photo_counts(session, [inbound.id])[inbound.id],
            "received_at": iso(inbound.received_at), "due_at": iso(item.due_at), "paged_at": iso(item.paged_at),
            "done_at": iso(item.done_at), "done_by": item.done_by, "note": item.note}
