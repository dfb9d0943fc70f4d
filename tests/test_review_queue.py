"""Replies nobody can safely answer automatically go to a person: the review queue, the holding answer, and the
page when nobody reads it in time (issue 7, part 3). Unknown senders reach the clinic that owns the number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aftercare.channels.console import read_outbox
from aftercare.config import get_settings
from aftercare.db import session_scope
from aftercare.models import AuditEntry, Escalation, ReviewItem, ScheduledMessage
from tests.cli_helpers import add_clinic, cli_json, enroll, run_cli

PATIENT = "+6281234567890"
DOCTOR = "+6281100000001"
CLINIC_PHONE = "+622150001234"
SENDER = "+15005550006"
REASSURING = ("normal", "glad", "all is well", "settles")


@pytest.fixture
def clinic(env):
    add_clinic(quiet_hours="00:00-00:00", sms_from=SENDER, review_within="30m")
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR, "--email", "a@glow.example")
    treated = (datetime.now(UTC) - timedelta(hours=30)).replace(microsecond=0).isoformat()
    return enroll(phone=PATIENT, treated_at=treated)


def _reply(text: str, *extra: str, sender: str = PATIENT) -> dict:
    return cli_json("reply", "--from", sender, "--to", SENDER, *extra, text)


def _assert_holding(answer: str) -> None:
    assert "nurse will read" in answer.lower() or "perawat" in answer.lower()
    assert "+622150001234" in answer
    assert not any(word in answer.lower() for word in REASSURING)


def test_an_unplaceable_reply_becomes_a_review_item_with_a_holding_answer(clinic):
    result = _reply("the thing from yesterday is doing the weird thing again")
    assert result["escalation_id"] is None and result["review_id"] is not None
    _assert_holding(result["answer"])
    [item] = cli_json("inbox")
    assert item["id"] == result["review_id"] and item["clinic"] == "glow"
    assert item["reason"] in ("unplaced", "unanswered_sign")
    assert item["body"] == "the thing from yesterday is doing the weird thing again"


def test_a_question_goes_to_a_person_not_a_robot(clinic):
    result = _reply("can I dye my hair this weekend?")
    assert result["review_id"] is not None
    assert cli_json("inbox")[0]["reason"] == "question"
    _assert_holding(result["answer"])


def test_a_photo_only_message_is_never_answered_all_is_well(clinic):
    result = _reply("", "--media", "1")
    assert result["review_id"] is not None and result["escalation_id"] is None
    _assert_holding(result["answer"])
    assert cli_json("inbox")[0]["reason"] == "photo"


def test_a_photo_with_a_danger_sign_still_escalates(clinic):
    result = _reply("see photo, my lip went white and it really hurts", "--media", "2")
    assert result["level"] == "emergency" and result["escalation_id"] is not None


def test_a_recognised_routine_sign_still_gets_its_tip(clinic):
    result = _reply("a little bruising on my cheek today")
    assert result["review_id"] is None and result["level"] == "routine"
    assert "bruise" in result["answer"].lower()


def test_a_sign_the_clinic_has_written_no_answer_for_goes_to_a_person(clinic):
    result = _reply("feeling a bit dizzy and sick since this morning")
    assert result["review_id"] is not None and result["escalation_id"] is None
    _assert_holding(result["answer"])
    assert cli_json("inbox")[0]["reason"] == "unanswered_sign"


def test_the_holding_answer_is_not_repeated_while_an_item_waits(clinic):
    assert _reply("hmm about the thing from before")["answer"]
    second = _reply("and the other thing too")
    assert second["review_id"] is not None and second["answer"] is None
    assert len(cli_json("inbox")) == 2


def test_the_answer_goes_in_the_language_the_patient_wrote_in(clinic):
    result = _reply("kak mau tanya, kapan boleh ke salon untuk creambath rambut?")
    assert result["review_id"] is not None
    assert "Perawat" in result["answer"] and "Thank you" not in result["answer"]


def test_replies_under_an_open_escalation_are_never_auto_answered(clinic):
    assert _reply("my lip has gone white and it really hurts")["escalation_id"]
    follow_up = _reply("ok thanks, a bit of bruising too")
    assert follow_up["answer"] is None
    with session_scope() as session:
        escalation = session.scalars(select(Escalation)).one()
    assert follow_up["escalation_id"] == escalation.id  # it shows on the escalation's timeline


def test_an_emergency_from_an_unknown_number_escalates_for_the_clinic_that_owns_the_number(clinic):
    text = "ini Ayu pakai hp kakak aku, bibir aku jadi putih pucat dan sakit banget abis filler"
    result = _reply(text, sender="+6285599990000")
    assert result["level"] == "emergency" and result["escalation_id"] is not None
    assert CLINIC_PHONE in result["answer"] and "SEKARANG" in result["answer"]  # the clinic's phone, in Indonesian
    cli_json("dispatch", "--once")
    pages = [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]
    assert len(pages) == 1 and "+6285599990000" in pages[0]["body"]
    shown = cli_json("escalations", "show", str(result["escalation_id"]))
    assert shown["patient_id"] is None and shown["patient_phone"] == "+6285599990000"


def test_anything_else_from_an_unknown_number_is_a_review_item(clinic):
    result = _reply("hi is this the clinic? I had a peel last week", sender="+6285599990001")
    assert result["escalation_id"] is None
    [item] = cli_json("inbox", "--clinic", "glow")
    assert item["reason"] == "unknown_sender" and item["patient_id"] is None
    _assert_holding(result["answer"])


def test_an_unread_review_item_pages_on_call_once_past_its_service_time(clinic):
    item_id = _reply("the thing from yesterday is doing the weird thing again")["review_id"]
    cli_json("dispatch", "--once")
    assert not [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]  # not yet due
    with session_scope() as session:
        session.execute(update(ReviewItem).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    cli_json("dispatch", "--once")
    cli_json("dispatch", "--once")
    pages = [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]
    assert len(pages) == 1 and f"item {item_id}" in pages[0]["body"]
    assert "weird" not in pages[0]["body"]  # the patient's words stay in the inbox


def test_a_review_item_read_in_time_pages_nobody(clinic):
    item_id = _reply("the thing from yesterday is doing the weird thing again")["review_id"]
    done = cli_json("inbox", "done", str(item_id), "--by", "Nurse Rina", "--note", "called her, all fine")
    assert done["status"] == "done" and done["done_by"] == "Nurse Rina"
    with session_scope() as session:
        session.execute(update(ReviewItem).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    cli_json("dispatch", "--once")
    assert not [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]
    assert cli_json("inbox") == []
    assert [i["id"] for i in cli_json("inbox", "--all")] == [item_id]
    with session_scope() as session:
        actions = session.scalars(select(AuditEntry.action).where(AuditEntry.subject_type == "review")).all()
    assert actions == ["review.opened", "review.done"]


def test_inbox_done_twice_or_unknown_is_a_one_line_error(clinic):
    item_id = _reply("the thing from yesterday is doing the weird thing again")["review_id"]
    cli_json("inbox", "done", str(item_id), "--by", "Rina")
    again = run_cli("inbox", "done", str(item_id), "--by", "Rina")
    assert again.exit_code == 1 and again.stderr.strip().count("\n") == 0 and "already done" in again.stderr
    missing = run_cli("inbox", "done", "999", "--by", "Rina")
    assert missing.exit_code == 1 and "unknown review item" in missing.stderr


def test_the_inbox_lists_the_most_serious_then_newest_first_per_clinic(clinic):
    add_clinic(slug="other", phone="+622150009999", sms_from="+15005550007")
    _reply("the thing from yesterday is doing the weird thing again")
    _reply("hello, is this Other clinic?", sender="+6285599990002").get("review_id")
    cli_json("reply", "--from", "+6285599990003", "--to", "+15005550007", "hello other clinic")
    assert {i["clinic"] for i in cli_json("inbox")} == {"glow", "other"}
    assert [i["clinic"] for i in cli_json("inbox", "--clinic", "other")] == ["other"]
    ids = [i["id"] for i in cli_json("inbox", "--clinic", "glow")]
    assert ids == sorted(ids, reverse=True)


def test_review_within_is_validated_at_clinic_add(env):
    bad = run_cli("clinic", "add", "--name", "X", "--slug", "x", "--timezone", "Asia/Jakarta", "--phone",
                  CLINIC_PHONE, "--review-within", "2 hours")
    assert bad.exit_code == 1 and "--review-within" in bad.stderr
    with session_scope() as session:
        assert session.scalar(select(ScheduledMessage.id)) is None


def test_a_review_page_queued_before_the_item_was_read_is_not_sent(clinic):
    item_id = _reply("the thing from yesterday is doing the weird thing again")["review_id"]
    with session_scope() as session:
        session.execute(update(ReviewItem).values(due_at=datetime.now(UTC) - timedelta(minutes=1)))
    from aftercare.review.paging import queue_overdue_review_pages

    with session_scope() as session:
        assert queue_overdue_review_pages(session) == 1
    cli_json("inbox", "done", str(item_id), "--by", "Rina")
    cli_json("dispatch", "--once")
    assert not [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]


def test_a_question_after_the_one_automatic_answer_still_reaches_a_person(clinic):
    first = _reply("a little bruising on my cheek today")
    assert first["answer"] and first["review_id"] is None
    second = _reply("sorry forgot, is the little bump near my eye ok?")
    assert second["review_id"] is not None and second["answer"]  # the holding answer


def test_a_photo_only_item_sorts_as_routine_not_ok(clinic):
    _reply("", "--media", "1")
    assert cli_json("inbox")[0]["level"] == "routine"


def test_staff_can_escalate_a_review_item_and_on_call_is_paged(clinic):
    item_id = _reply("hi this is her husband, something is wrong with her face")["review_id"]
    escalation = cli_json("inbox", "escalate", str(item_id), "--by", "Nurse Rina", "--level", "emergency")
    assert escalation["level"] == "emergency" and escalation["status"] == "open"
    cli_json("dispatch", "--once")
    assert [m for m in read_outbox(get_settings()) if m["to"] == DOCTOR]
    assert cli_json("inbox") == [] and cli_json("inbox", "--all")[0]["status"] == "escalated"
    again = run_cli("inbox", "escalate", str(item_id), "--by", "Rina", "--level", "urgent")
    assert again.exit_code == 1 and "already escalated" in again.stderr


def test_a_second_clinic_cannot_take_a_sender_number_already_in_use(clinic):
    taken = run_cli("clinic", "add", "--name", "Other", "--slug", "other", "--timezone", "Asia/Jakarta",
                    "--phone", "+622150009999", "--sms-from", SENDER)
    assert taken.exit_code == 1 and "already another clinic's sender" in taken.stderr


def test_an_unclear_reply_to_an_open_emergency_question_is_due_in_minutes_not_clinic_hours(env):
    add_clinic(quiet_hours="00:00-23:59", sms_from=SENDER)  # quiet almost all day: the clock would wait
    cli_json("oncall", "add", "--clinic", "glow", "--name", "Dr A", "--phone", DOCTOR)
    treated = (datetime.now(UTC) - timedelta(hours=4, minutes=30)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treated_at=treated)
    cli_json("dispatch", "--once")  # the first-night check-in is safety-critical: it goes in quiet hours
    result = _reply("hmm not sure, hard to say")
    [item] = cli_json("inbox")
    assert item["id"] == result["review_id"]
    due = datetime.fromisoformat(item["due_at"])
    assert due - datetime.now(UTC) < timedelta(minutes=16)
    _assert_holding(result["answer"])


def test_the_holding_answer_comes_again_after_half_an_hour(clinic):
    assert _reply("hmm about the thing from before")["answer"]
    with session_scope() as session:
        session.execute(update(ReviewItem).values(created_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert _reply("and the other thing too")["answer"]


def test_within_72_hours_of_filler_an_unplaced_reply_is_due_in_minutes(clinic):
    _reply("the thing from yesterday is doing the weird thing again")  # filler 30 hours ago, no question open
    due = datetime.fromisoformat(cli_json("inbox")[0]["due_at"])
    assert due - datetime.now(UTC) < timedelta(minutes=16)


def test_outside_the_occlusion_window_the_clinics_service_time_applies(env):
    add_clinic(quiet_hours="00:00-00:00", sms_from=SENDER, review_within="2h")
    treated = (datetime.now(UTC) - timedelta(days=20)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treatment="mesotherapy", treated_at=treated)
    _reply("the thing from last week is doing the weird thing again")
    due = datetime.fromisoformat(cli_json("inbox")[0]["due_at"])
    assert timedelta(minutes=115) < due - datetime.now(UTC) <= timedelta(hours=2)


def test_swelling_after_day_3_goes_to_a_person_not_to_the_swelling_tip(env):
    add_clinic(quiet_hours="00:00-00:00", sms_from=SENDER)
    treated = (datetime.now(UTC) - timedelta(days=6)).replace(microsecond=0).isoformat()
    enroll(phone=PATIENT, treatment="mesotherapy", treated_at=treated)
    result = _reply("my chin is still a little swollen")
    assert result["review_id"] is not None and "normal" not in (result["answer"] or "").lower()
    early = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    enroll(phone="+6281234567891", treatment="mesotherapy", treated_at=early)
    day1 = cli_json("reply", "--from", "+6281234567891", "--to", SENDER, "a little swelling on my chin")
    assert day1["review_id"] is None and "Swelling is normal" in day1["answer"]
