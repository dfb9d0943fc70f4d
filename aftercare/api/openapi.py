"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json. The request body's schema is generated
from the pydantic model, so the document and the validation cannot drift apart."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aftercare.api.schemas import EnrollmentIn
from aftercare.models import Channel, EnrollmentStatus, MessageStatus

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_ENROLLMENT_ID = {"name": "enrollment_id", "in": "path", "required": True,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}}


def _ok(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Enrollment"}}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _PROBLEM for code in codes}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    location = {"Location": {"description": "The enrollment's URL", "schema": {"type": "string"}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Aftercare enrollment API", "version": "1.0.0",
                 "description": "Enroll patients from a booking system. Errors are RFC 9457 problem details "
                                "with the same messages as `aftercare enroll`. Keys: `aftercare apikey create "
                                "--clinic SLUG`; a key sees only its own clinic."},
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/enrollments": {"post": {
                "operationId": "createEnrollment",
                "summary": "Enroll a patient after a treatment session (writes the care protocol's schedule)",
                "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/EnrollmentRequest"}}}},
                "responses": {
                    "201": _ok("Enrolled", location),
                    "200": _ok("Already enrolled (same patient, treatment and time): nothing changed", location),
                    **_errors(400, 401, 413, 415, 422)}}},
            "/api/v1/enrollments/{enrollment_id}": {"get": {
                "operationId": "getEnrollment", "summary": "An enrollment's status and schedule",
                "parameters": [_ENROLLMENT_ID],
                "responses": {"200": _ok("The enrollment"), **_errors(401, 404)}}},
            "/api/v1/enrollments/{enrollment_id}/cancel": {"post": {
                "operationId": "cancelEnrollment",
                "summary": "Cancel an enrollment and its remaining reminders (cancelling twice changes nothing)",
                "parameters": [_ENROLLMENT_ID],
                "responses": {"200": _ok("The cancelled enrollment"), **_errors(401, 404, 409)}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "An API key from `aftercare apikey create`"}},
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Optional. The same key with the same body returns the first answer again "
                               "(same enrollment, same status code); with another body: 422. Keys are per clinic.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}},
            "responses": {"Problem": {"description": "A problem (RFC 9457)", "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}},
            "schemas": {
                "EnrollmentRequest": EnrollmentIn.model_json_schema(),
                "Enrollment": _enrollment_schema(),
                "Problem": _problem_schema(),
            },
        },
    }


def _enrollment_schema() -> dict[str, Any]:
    message = {"type": "object", "additionalProperties": False,
               "required": ["step", "channel", "due_at", "status", "reason"],
               "properties": {
                   "step": {"type": "string"},
                   "channel": {"enum": [c.value for c in Channel]},
                   "due_at": {"type": "string", "format": "date-time"},
                   "status": {"enum": [s.value for s in MessageStatus]},
                   "reason": {"type": ["string", "null"], "description": "Why a message is skipped, if it is"}}}
    return {"type": "object", "additionalProperties": False,
            "required": ["id", "patient_id", "status", "treatment", "treated_at", "scheduled", "sms", "messages"],
            "properties": {
                "id": {"type": "integer"},
                "patient_id": {"type": "integer"},
                "status": {"enum": [s.value for s in EnrollmentStatus]},
                "treatment": {"type": "string"},
                "treated_at": {"type": "string", "format": "date-time"},
                "scheduled": {"type": "integer", "description": "Messages still to be sent"},
                "sms": {"enum": ["allowed", "opted_out", "no_consent"],
                        "description": "Whether SMS reaches the patient, or why not"},
                "messages": {"type": "array", "items": message, "description": "The schedule, due times in UTC "
                                                                              "(no message bodies)"}}}


def _problem_schema() -> dict[str, Any]:
    return {"type": "object", "required": ["type", "title", "status", "detail"],
            "properties": {
                "type": {"type": "string"}, "title": {"type": "string"},
                "status": {"type": "integer"}, "detail": {"type": "string"},
                "errors": {"type": "array", "description": "Field errors",
                           "items": {"type": "object", "required": ["field", "message"],
                                     "properties": {"field": {"type": "string"}, "message": {"type": "string"}}}}}}
