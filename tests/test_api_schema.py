"""Property-based checks of the enrollment API against its own OpenAPI document (schemathesis): whatever
schemathesis generates from the document (valid bodies and invalid ones), the running app never fails with a
server error, answers only with documented status codes, and its bodies match the documented schemas.

Deterministic for CI: hypothesis derandomized (a fixed seed per test) and no example database."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from aftercare.inbound.web import create_app
from tests.cli_helpers import add_clinic, cli_json, enroll

# Loaded from the app itself (its /api/v1/openapi.json, through WSGI); the requests go to the same app in-process.
# Not schemathesis.pytest.from_fixture: its lazy loading breaks on pytest 9 (it sets pytest's private
# Function._nodeid). The app reads its settings per request, so the `env` fixture's database applies.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app())


@pytest.fixture
def api_key(env) -> str:
    """A clinic and its API key, with a few enrollments (ids 1 to 3, so that generated ids find real ones
    too); and another clinic's enrollment (id 4), which the key must not see."""
    add_clinic("glow")
    add_clinic("other", phone="+622150009999")
    for day in (1, 2, 3):
        enroll(clinic="glow", treated_at=f"2026-11-2{day}T10:00:00+07:00")
    enroll(clinic="other")
    return cli_json("apikey", "create", "--clinic", "glow")["key"]


@schema.parametrize()
@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_openapi_document(case, api_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {api_key}"},
                           checks=[not_a_server_error, status_code_conformance, response_schema_conformance])
