"""The enrollment API over real HTTP (waitress on loopback), with keys made by the real `aftercare apikey` CLI."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime

import pytest
import requests
from sqlalchemy import func, select

from aftercare.db import session_scope
from aftercare.models import ApiKey, AuditEntry, Enrollment, IdempotencyRecord
from tests.cli_helpers import add_clinic, cli_json, recent, run_cli
from tests.web_helpers import serve_app

BODY = {"first_name": "Ayu", "phone": "+6281298765432", "treatment": "dermal-filler",
        "treated_at": recent(hours=1)}


def _key(clinic: str = "glow", *extra: str) -> str:
    return cli_json("apikey", "create", "--clinic", clinic, *extra)["key"]


@pytest.fixture
def api(env):
    add_clinic("glow")
    add_clinic("other", phone="+622150009999")
    with serve_app() as client:
        yield client


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key

    def headers(self, idem: str | None = None, **extra: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}", **extra}
        if idem is not None:
            headers["Idempotency-Key"] = idem
        return headers

    def enroll(self, body: dict, idem: str | None = None) -> requests.Response:
        return requests.post(f"{self.base}/api/v1/enrollments", json=body, headers=self.headers(idem), timeout=30)

    def get(self, enrollment_id: int | str) -> requests.Response:
        return requests.get(f"{self.base}/api/v1/enrollments/{enrollment_id}", headers=self.headers(), timeout=10)

    def cancel(self, enrollment_id: int | str) -> requests.Response:
        return requests.post(f"{self.base}/api/v1/enrollments/{enrollment_id}/cancel", headers=self.headers(),
                             timeout=10)


@pytest.fixture
def glow(api) -> Api:
    return Api(api.base, _key("glow"))


@pytest.fixture
def glow_any(any_env) -> Api:
    """As `glow`, on PostgreSQL and on the embedded SQLite file."""
    add_clinic("glow")
    with serve_app() as client:
        yield Api(client.base, _key("glow"))


def _problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    data = response.json()
    assert data["status"] == status and data["title"] and data["type"] and data["detail"]
    return data


def _count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


# --- keys -----------------------------------------------------------------------------------------------------
def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(env):
    add_clinic("glow")
    result = run_cli("apikey", "create", "--clinic", "glow", "--label", "Booking system")
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("ak_") and "\n" not in key and len(key) > 40
    assert "shown once" in result.stderr
    created = cli_json("apikey", "create", "--clinic", "glow")
    assert set(created) == {"id", "clinic", "prefix", "key"} and created["clinic"] == "glow"
    assert created["key"].startswith(f"ak_{created['prefix']}_")
    with session_scope() as session:
        rows = session.scalars(select(ApiKey)).all()
        stored = " ".join(f"{r.prefix} {r.key_hash} {r.label}" for r in rows)
        actions = session.scalars(select(AuditEntry.action)).all()
    assert key not in stored and created["key"] not in stored
    assert key.split("_", 2)[2] not in stored  # not even the secret part
    assert actions.count("apikey.created") == 2
    listed = cli_json("apikey", "list", "--clinic", "glow")
    assert [r["label"] for r in listed] == ["Booking system", None]
    assert created["key"] not in json.dumps(listed) and key not in run_cli("apikey", "list", "--clinic", "glow").stdout


@pytest.mark.parametrize("args, message", [
    (["apikey", "create", "--clinic", "nowhere"], "unknown clinic 'nowhere'"),
    (["apikey", "create", "--clinic", "glow", "--label", "a\nb"], "label contains control characters"),
    (["apikey", "revoke", "999"], "unknown API key 999"),
    (["apikey", "revoke", "99999999999"], "unknown API key 99999999999"),
    (["apikey", "list", "--clinic", "gone"], "unknown clinic 'gone'"),
])
def test_apikey_errors_are_one_line(env, args, message):
    add_clinic("glow")
    result = run_cli(*args)
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _count(ApiKey) == 0


# --- auth -----------------------------------------------------------------------------------------------------
def test_missing_invalid_or_revoked_keys_get_401(api):
    key = _key("glow")
    created = cli_json("apikey", "create", "--clinic", "glow")
    prefix = created["prefix"]
    wrong = [None, "", "Basic dXNlcjpwYXNz", "Bearer", "Bearer nonsense", f"Bearer {key}x",
             f"Bearer ak_{prefix}_{'A' * 43}", f"Bearer ak_{prefix}_", f"Bearer {key[:-1]}"]
    for header in wrong:
        headers = {} if header is None else {"Authorization": header}
        for method, path in [("post", "/api/v1/enrollments"), ("get", "/api/v1/enrollments/1"),
                             ("post", "/api/v1/enrollments/1/cancel")]:
            response = requests.request(method, api.base + path, json=BODY, headers=headers, timeout=10)
            _problem(response, 401)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert _count(Enrollment) == 0
    assert Api(api.base, created["key"]).enroll(BODY).status_code == 201
    revoked = cli_json("apikey", "revoke", str(created["id"]))
    assert revoked["revoked_at"]
    assert _problem(Api(api.base, created["key"]).get(1), 401)["detail"] == "invalid or revoked API key"
    assert Api(api.base, key).get(1).status_code == 200  # the clinic's other key still works
    with session_scope() as session:
        assert "apikey.revoked" in session.scalars(select(AuditEntry.action)).all()


def test_the_openapi_document_needs_no_key(api):
    response = requests.get(api.base + "/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert set(document["paths"]) == {"/api/v1/enrollments", "/api/v1/enrollments/{enrollment_id}",
                                      "/api/v1/enrollments/{enrollment_id}/cancel"}
    assert document["components"]["schemas"]["EnrollmentRequest"]["additionalProperties"] is False


# --- enroll ---------------------------------------------------------------------------------------------------
def test_enroll_answers_201_with_the_enrollment_and_its_location(glow):
    response = glow.enroll({**BODY, "email": "ayu@example.com", "sms_consent": True, "language": "id"})
    assert response.status_code == 201, response.text
    data = response.json()
    assert response.headers["Location"] == f"/api/v1/enrollments/{data['id']}"
    assert data["status"] == "active" and data["treatment"] == "dermal-filler" and data["sms"] == "allowed"
    assert data["treated_at"] == datetime.fromisoformat(BODY["treated_at"]).astimezone(UTC).isoformat()
    assert data["scheduled"] == sum(m["status"] == "scheduled" for m in data["messages"]) > 0
    assert set(data["messages"][0]) == {"step", "channel", "due_at", "status", "reason"}
    with session_scope() as session:
        enrollment = session.get(Enrollment, data["id"])
        actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "enrollment.created")).all()
        key_id = session.scalar(select(ApiKey.id))
        assert enrollment.patient.language == "id" and enrollment.patient.email == "ayu@example.com"
    assert actors == [f"apikey:{key_id}"]
    # The same session again without an Idempotency-Key: the enrollment stands, 200, nothing new.
    again = glow.enroll(BODY)
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert _count(Enrollment) == 1


def test_consent_false_true_or_absent_works_as_in_the_cli(glow):
    first = glow.enroll({**BODY, "sms_consent": False})
    assert first.json()["sms"] == "no_consent"
    later = glow.enroll({**BODY, "treatment": "microneedling"})  # absent: as on file
    assert later.json()["sms"] == "no_consent"
    given = glow.enroll({**BODY, "treatment": "chemical-peel", "sms_consent": True})
    assert given.json()["sms"] == "allowed"


def test_idempotent_replay_returns_the_stored_answer(glow_any):
    glow = glow_any
    key = str(uuid.uuid4())
    first = glow.enroll(BODY, idem=key)
    assert first.status_code == 201
    # Same values in another order, with a default spelled out: the same body.
    replay = glow.enroll({"language": None, **dict(reversed(list(BODY.items()))), "email": None}, idem=key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Location"] == first.headers["Location"]
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert _count(Enrollment) == 1 and _count(IdempotencyRecord) == 1
    # Even after a cancel, the key's answer is the one stored.
    glow.cancel(first.json()["id"])
    assert glow.enroll(BODY, idem=key).json()["status"] == "active"


@pytest.mark.parametrize("change", [{"first_name": "Sari"}, {"treated_at": BODY["treated_at"][:-6] + "+08:00"},
                                    {"sms_consent": False}, {"language": "id"}, {"email": "a@example.com"}])
def test_the_same_key_with_another_body_is_422(glow, change):
    key = "order-" + uuid.uuid4().hex
    assert glow.enroll(BODY, idem=key).status_code == 201
    problem = _problem(glow.enroll({**BODY, **change}, idem=key), 422)
    assert "Idempotency-Key" in problem["detail"]
    assert _count(Enrollment) == 1


def test_idempotency_keys_are_per_clinic(api, glow):
    other = Api(api.base, _key("other"))
    assert glow.enroll(BODY, idem="booking-1").status_code == 201
    response = other.enroll({**BODY, "first_name": "Putri"}, idem="booking-1")
    assert response.status_code == 201
    assert _count(Enrollment) == 2


def test_a_failed_request_does_not_use_up_its_key(glow):
    assert _problem(glow.enroll({**BODY, "phone": "12"}, idem="k1"), 422)
    assert glow.enroll(BODY, idem="k1").status_code == 201


@pytest.mark.parametrize("value", ["", "a" * 256, "caf\u00e9", "two words"])
def test_a_malformed_idempotency_key_is_400(glow, value):
    response = requests.post(glow.base + "/api/v1/enrollments", json=BODY, timeout=10,
                             headers={**glow.headers(), "Idempotency-Key": value.encode("utf-8")})
    _problem(response, 400)
    assert _count(Enrollment) == 0


def test_concurrent_requests_with_one_key_create_one_enrollment(glow_any):
    glow = glow_any
    for round_ in range(3):
        key, body = f"race-{round_}", {**BODY, "treated_at": f"2026-11-2{round_}T10:00:00+07:00"}
        barrier, responses = threading.Barrier(8), []

        def send(body=body, key=key, barrier=barrier, responses=responses):
            barrier.wait()
            responses.append(glow.enroll(body, idem=key))

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # All get the first answer: 201 and one enrollment (not one 201 and seven 200s).
        assert [r.status_code for r in responses] == [201] * 8, [r.text for r in responses]
        assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    assert _count(Enrollment) == 3 and _count(IdempotencyRecord) == 3


# --- errors ---------------------------------------------------------------------------------------------------
CLI_FLAGS = {"first_name": "--first-name", "phone": "--phone", "email": "--email", "timezone": "--timezone",
             "treatment": "--treatment", "treated_at": "--treated-at"}


@pytest.mark.parametrize("change", [
    {"phone": "12"}, {"phone": "+62 555"}, {"phone": "6.28123E+11"}, {"phone": "not a phone"},
    {"timezone": "Mars/Olympus"}, {"timezone": "../etc/passwd"},
    {"treatment": "botox"}, {"treatment": "dermal filler"},
    {"first_name": "   "}, {"first_name": "A" * 101}, {"first_name": "Ay\u202eu"},
    {"email": "not-an-email"}, {"email": "a@b"},
    {"treated_at": "2026-11-25T10:00:00"}, {"treated_at": "tomorrow"}, {"treated_at": "2026-13-01T10:00+07:00"},
])
def test_errors_are_problems_with_the_cli_message(glow, change):
    body = {**BODY, **change}
    args = ["enroll", "--clinic", "glow"]
    for field, flag in CLI_FLAGS.items():
        if field in body:
            args += [flag, body[field]]
    cli = run_cli(*args)
    assert cli.exit_code == 1
    message = cli.stderr.strip().removeprefix("error: ")
    problem = _problem(glow.enroll(body), 422)
    assert problem["detail"] == message
    assert BODY["phone"] not in json.dumps(problem)
    assert _count(Enrollment) == 0


def test_an_unknown_language_is_refused_with_the_service_message(glow):
    problem = _problem(glow.enroll({**BODY, "language": "fr"}), 422)
    assert problem["detail"] == "unknown language 'fr'; choose one of: en, id"


@pytest.mark.parametrize("body, field", [
    ({**BODY, "nickname": "A"}, "nickname"),
    ({**BODY, "sms_consent": "yes"}, "sms_consent"),
    ({**BODY, "sms_consent": 1}, "sms_consent"),
    ({**BODY, "phone": 6281234567890}, "phone"),
    ({k: v for k, v in BODY.items() if k != "treatment"}, "treatment"),
    ({**BODY, "first_name": None}, "first_name"),
    ({**BODY, "treated_at": "x" * 65}, "treated_at"),
    ([BODY], "(body)"),
    ("Ayu", "(body)"),
])
def test_a_body_of_the_wrong_shape_is_422_with_field_errors(glow, body, field):
    problem = _problem(glow.enroll(body), 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert problem["detail"].startswith(field)
    assert _count(Enrollment) == 0


def test_bodies_that_are_not_json_or_too_large(glow):
    url = glow.base + "/api/v1/enrollments"
    for data, content_type in [(b"first_name=Ayu", "application/x-www-form-urlencoded"),
                               (json.dumps(BODY).encode(), "text/plain"), (json.dumps(BODY).encode(), None)]:
        headers = glow.headers(**({"Content-Type": content_type} if content_type else {}))
        _problem(requests.post(url, data=data, headers=headers, timeout=10), 415)
    json_headers = glow.headers(**{"Content-Type": "application/json"})
    for data in [b"{", b"\xff\xfe", b'{"first_name": "\\ud800"}', b""]:
        _problem(requests.post(url, data=data, headers=json_headers, timeout=10), 400)
    big = json.dumps({**BODY, "first_name": "A" * 70_000}).encode()
    _problem(requests.post(url, data=big, headers=json_headers, timeout=10), 413)
    chunked = (big[i:i + 4096] for i in range(0, len(big), 4096))  # no Content-Length
    _problem(requests.post(url, data=chunked, headers=json_headers, timeout=10), 413)
    assert _count(Enrollment) == 0


def test_unknown_paths_and_methods_are_problems_too(glow):
    _problem(requests.get(glow.base + "/api/v1/nothing-here", headers=glow.headers(), timeout=10), 404)
    _problem(requests.get(glow.base + "/api/v1/enrollments/abc", headers=glow.headers(), timeout=10), 404)
    _problem(requests.get(glow.base + "/api/v1/enrollments/-1", headers=glow.headers(), timeout=10), 404)
    not_allowed = _problem(requests.get(glow.base + "/api/v1/enrollments", headers=glow.headers(), timeout=10), 405)
    assert "POST" in not_allowed["detail"]
    _problem(requests.delete(glow.base + "/api/v1/enrollments/1", headers=glow.headers(), timeout=10), 405)
    for huge in ["2147483648", "99999999999999999999999"]:
        _problem(glow.get(huge), 404)
        _problem(glow.cancel(huge), 404)


# --- show and cancel ------------------------------------------------------------------------------------------
def test_get_shows_status_and_schedule_without_message_bodies(glow):
    created = glow.enroll(BODY).json()
    response = glow.get(created["id"])
    assert response.status_code == 200
    data = response.json()
    assert data == created
    steps = [m["step"] for m in data["messages"]]
    assert len(steps) == len(set(steps)) > 3
    assert all(m["due_at"].endswith("+00:00") for m in data["messages"])
    assert "body" not in json.dumps(data) and "Ayu" not in json.dumps(data)
    assert _problem(glow.get(created["id"] + 1), 404)["detail"] == f"unknown enrollment {created['id'] + 1}"


def test_cancel_cancels_the_remaining_reminders(glow):
    created = glow.enroll(BODY).json()
    response = glow.cancel(created["id"])
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["status"] == "cancelled" and data["scheduled"] == 0
    assert {m["status"] for m in data["messages"]} <= {"cancelled", "skipped"}
    assert glow.get(created["id"]).json() == data
    assert glow.cancel(created["id"]).status_code == 200  # twice: nothing changes
    with session_scope() as session:
        actors = session.scalars(select(AuditEntry.actor).where(AuditEntry.action == "enrollment.cancelled")).all()
    assert len(actors) == 1 and actors[0].startswith("apikey:")
    _problem(glow.cancel(created["id"] + 7), 404)


def test_a_key_sees_only_its_own_clinic(api, glow):
    mine = glow.enroll(BODY).json()
    other = Api(api.base, _key("other"))
    theirs = other.enroll(BODY).json()
    assert mine["id"] != theirs["id"] and mine["patient_id"] != theirs["patient_id"]
    for enrollment_id in (mine["id"],):
        assert _problem(other.get(enrollment_id), 404)["detail"] == f"unknown enrollment {enrollment_id}"
        _problem(other.cancel(enrollment_id), 404)
    assert glow.get(mine["id"]).json()["status"] == "active"
    assert glow.get(theirs["id"]).status_code == 404
