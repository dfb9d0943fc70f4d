"""RFC 9457 problem details: every API error is `application/problem+json`, never an HTML page."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from pydantic import ValidationError
from werkzeug.http import HTTP_STATUS_CODES

PROBLEM_TYPE = "application/problem+json"
# Our own problem types; plain HTTP errors use "about:blank" (RFC 9457 section 4.2.1), titled by their status.
INVALID_BODY = "urn:aftercare:problem:invalid-body"
INVALID_INPUT = "urn:aftercare:problem:invalid-input"
IDEMPOTENCY_KEY_REUSED = "urn:aftercare:problem:idempotency-key-reused"
CONFLICT = "urn:aftercare:problem:conflict"


def problem(status: int, detail: str, *, type_: str = "about:blank", title: str | None = None,
            errors: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> Response:
    """A problem response: {"type", "title", "status", "detail"} plus "errors" [{"field", "message"}] when given."""
    body: dict[str, Any] = {"type": type_, "title": title or HTTP_STATUS_CODES.get(status, "Error"),
                            "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_TYPE, headers=headers)


def validation_problem(error: ValidationError) -> Response:
    """Pydantic's field errors as one 422 problem: detail names the first field, `errors` lists them all."""
    errors = [{"field": ".".join(str(part) for part in item["loc"]) or "(body)", "message": item["msg"]}
              for item in error.errors(include_url=False, include_input=False)]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem(422, f"{first['field']}: {first['message']}{more}", type_=INVALID_BODY,
                   title="The request body is not a valid enrollment", errors=errors)
