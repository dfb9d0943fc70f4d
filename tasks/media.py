"""Fetching patients' photos from Twilio, queued by the webhook once its transaction has committed."""

from __future__ import annotations

from aftercare.inbound.media import fetch_for_message
from tasks.app import app


@app.task(name="tasks.media.fetch", ignore_result=True)
def fetch(provider_sid: str) -> dict[str, int]:
    """Fetch and store the pending photos of the inbound message with this Twilio MessageSid. A failure is left
    pending with its attempt counted: the dispatcher tick's sweep retries it."""
    return dict(fetch_for_message(provider_sid))
