"""The clinic staff's web side: the escalation page reached from a page's signed link, sign-in and the review
inbox (issue 9). Server-rendered pages (Flask + Jinja2), mobile first."""

from __future__ import annotations

from flask import Blueprint

blueprint = Blueprint("staff", __name__)

from aftercare.staff import media_route  # noqa: E402,F401 - registers GET /media/<token> on the blueprint
