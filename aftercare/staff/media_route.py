"""GET /media/<token>: a patient's stored photo, for the escalation page and the inbox.

The token (signing.sign("media", media_id), made by aftercare.inbound.media.photo_urls) is the credential, valid
AFTERCARE_PAGE_LINK_HOURS like the page link it sits beside. A forged, altered or expired token gets 403.
"""

from __future__ import annotations

from flask import Response, abort, send_file

from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.inbound.media import media_file_path
from aftercare.models import MediaFile
from aftercare.staff import blueprint
from aftercare.staff.signing import InvalidToken, unsign


@blueprint.get("/media/<token>")
def media(token: str) -> Response:
    settings = get_settings()
    try:
        media_id = unsign("media", token, max_age_seconds=settings.page_link_hours * 3600, settings=settings)
    except InvalidToken:
        abort(403)
    if not isinstance(media_id, int):
        abort(403)
    with session_scope() as session:
        row = session.get(MediaFile, media_id)
        path = media_file_path(row, settings) if row is not None else None
        content_type = row.content_type if row is not None else None
    if path is None or not content_type:
        abort(404)
    response = send_file(path, mimetype=content_type, conditional=False, etag=False, max_age=None)
    # A patient's photo: kept by no cache, never sniffed into something runnable, and nothing else from it runs.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
