"""HTTP for the enrollment API: authentication, body limits and parsing, and errors as problem details.

Every answer under /api/v1 is JSON: a result, or an RFC 9457 problem (also for unknown paths, wrong methods,
bodies that are too large or not JSON, and unexpected failures) - never an HTML page.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from flask import Response, g, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from aftercare.api import blueprint
from aftercare.api import enrollments as api_enrollments
from aftercare.api.keys import authenticate, touch
from aftercare.api.openapi import openapi_document
from aftercare.api.problems import (
    CONFLICT,
    IDEMPOTENCY_KEY_REUSED,
    INVALID_BODY,
    INVALID_INPUT,
    problem,
    validation_problem,
)
from aftercare.api.schemas import EnrollmentIn
from aftercare.db import session_scope
from aftercare.errors import AftercareError, InputError, NotFound
from aftercare.models import ApiKey

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024
# An Idempotency-Key: 1 to 255 visible ASCII characters (a UUID is the usual choice).
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")
_BEARER = re.compile(r"Bearer[ ]+(\S+)[ ]*", re.IGNORECASE)


class ApiProblem(Exception):
    """Raised inside a view to answer with a problem."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json",
                    headers=headers)


@blueprint.before_app_request
def _unrouted_api_request() -> Response | None:
    """Unknown paths and wrong methods under /api/v1 never reach a blueprint view (so neither its error handlers):
    answer them here, as problems, instead of with the app's plain-text pages."""
    error = request.routing_exception
    under_api = request.path == blueprint.url_prefix or request.path.startswith(blueprint.url_prefix + "/")
    if error is None or not under_api:
        return None
    if isinstance(error, MethodNotAllowed):
        allowed = ", ".join(sorted(error.valid_methods or []))
        return problem(405, f"{request.method} is not allowed here; allowed: {allowed}", headers={"Allow": allowed})
    if isinstance(error, HTTPException) and error.code and error.code >= 400:
        return problem(error.code, "no such API resource" if error.code == 404 else str(error.description))
    return None


@blueprint.before_request
def _authenticate() -> Response | None:
    """Every operation but the OpenAPI document needs `Authorization: Bearer <key>`; g.api_key is its row."""
    if request.endpoint == "api.openapi":
        return None
    challenge = {"WWW-Authenticate": 'Bearer realm="aftercare"'}
    match = _BEARER.fullmatch(request.headers.get("Authorization", ""))
    if match is None:
        return problem(401, "missing API key: send the header `Authorization: Bearer <key>`", headers=challenge)
    with session_scope() as session:
        api_key = authenticate(session, match.group(1))
        if api_key is not None:
            touch(session, api_key)
            session.expunge(api_key)
    if api_key is None:
        return problem(401, "invalid or revoked API key", headers=challenge)
    g.api_key = api_key
    return None


def _current_key(session) -> ApiKey:
    return session.merge(g.api_key, load=False)


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return _json(openapi_document())


@blueprint.post("/enrollments")
def create_enrollment() -> Response:
    body = _enrollment_body()
    idempotency_key = _idempotency_key()
    with session_scope() as session:
        outcome = api_enrollments.enroll(session, _current_key(session), body, idempotency_key=idempotency_key)
    headers = {"Location": f"{blueprint.url_prefix}/enrollments/{outcome.body['id']}"}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(outcome.body, outcome.status, headers)


@blueprint.get("/enrollments/<int:enrollment_id>")
def show_enrollment(enrollment_id: int) -> Response:
    with session_scope() as session:
        enrollment = api_enrollments.get_for_clinic(session, _current_key(session), enrollment_id)
        body = api_enrollments.enrollment_view(session, enrollment)
    return _json(body)


@blueprint.post("/enrollments/<int:enrollment_id>/cancel")
def cancel_enrollment(enrollment_id: int) -> Response:
    with session_scope() as session:
        body = api_enrollments.cancel(session, _current_key(session), enrollment_id)
    return _json(body)


def _enrollment_body() -> EnrollmentIn:
    """The JSON body as an EnrollmentIn; a problem (413, 415, 400, 422) otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiProblem(_too_large())
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiProblem(problem(415, "send the body as JSON with `Content-Type: application/json`"))
    request.max_content_length = MAX_BODY_BYTES  # a chunked body has no Content-Length: limit the read too
    raw = request.get_data(cache=False)
    try:
        return EnrollmentIn.model_validate_json(raw)
    except ValidationError as exc:
        if any(item["type"] == "json_invalid" for item in exc.errors()):
            raise ApiProblem(problem(400, "the body is not valid JSON (UTF-8)", type_=INVALID_BODY)) from None
        raise ApiProblem(validation_problem(exc)) from None


def _idempotency_key() -> str | None:
    value = request.headers.get("Idempotency-Key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise ApiProblem(problem(400, "Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)",
                                 type_=INVALID_BODY, errors=[{"field": "Idempotency-Key",
                                                              "message": "1 to 255 visible ASCII characters"}]))
    return value


def _too_large() -> Response:
    return problem(413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")


@blueprint.errorhandler(ApiProblem)
def _api_problem(error: ApiProblem) -> Response:
    return error.response


@blueprint.errorhandler(NotFound)
def _not_found(error: NotFound) -> Response:
    return problem(404, str(error))


@blueprint.errorhandler(InputError)
def _input_error(error: InputError) -> Response:
    # The same messages as `aftercare enroll` prints (they never repeat a phone number or email).
    return problem(422, str(error), type_=INVALID_INPUT, title="The enrollment was refused")


@blueprint.errorhandler(api_enrollments.IdempotencyKeyReused)
def _key_reused(error: api_enrollments.IdempotencyKeyReused) -> Response:
    return problem(422, str(error), type_=IDEMPOTENCY_KEY_REUSED, title="Idempotency-Key reused")


@blueprint.errorhandler(AftercareError)
def _conflict(error: AftercareError) -> Response:
    return problem(409, str(error), type_=CONFLICT, title="Not possible in the enrollment's current state")


@blueprint.errorhandler(RequestEntityTooLarge)
def _entity_too_large(_error: RequestEntityTooLarge) -> Response:
    return _too_large()


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return problem(error.code or 500, str(error.description))


@blueprint.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    # The type only: an exception's text can carry what a patient typed.
    log.error("API %s %s failed: %s", request.method, request.url_rule, type(error).__name__)
    log.debug("API failure", exc_info=True)
    return problem(500, "an unexpected error; try again later")
