"""The rules that decide what happens to a triaged reply, without a database (issue 7, parts 1 and 3)."""

from __future__ import annotations

import pytest

from aftercare.escalation import RED_FLAG_SIGN
from aftercare.inbound.answers import Answer, asks_beyond_normal, read_answer
from aftercare.inbound.checkin import RedFlagQuestion
from aftercare.inbound.disposition import Action, dispose
from aftercare.inbound.handling import answerable_signs
from aftercare.inbound.language import message_language
from aftercare.triage import triage

ASKED = RedFlagQuestion(level="emergency", open=True)
LATE = RedFlagQuestion(level="emergency", open=False)


def _dispose(text: str, **context):
    return dispose(triage(text, "en"), answerable=answerable_signs(), answer=read_answer(text), **context)


@pytest.mark.parametrize("text", ["Yes", "yep", "YA", "iya kak", "yess", "1", "ya dok 🙏"])
def test_a_one_word_yes_is_read_as_yes(text):
    assert read_answer(text).answer is Answer.YES and read_answer(text).whole


@pytest.mark.parametrize("text", ["No", "nope", "tidak", "ga ada kak", "nggak", "2", "no thank you"])
def test_a_one_word_no_is_read_as_no(text):
    assert read_answer(text).answer is Answer.NO and read_answer(text).whole


@pytest.mark.parametrize("text", ["makasih ya kak", "ok", "thanks!", "the bruise is fine", ""])
def test_thanks_and_sentences_are_no_answer(text):
    assert read_answer(text) is None


def test_yes_opening_a_longer_reply_is_an_answer_but_not_the_whole_reply():
    read = read_answer("yes it has gone a bit dusky")
    assert read.answer is Answer.YES and not read.whole


def test_yes_to_an_open_red_flag_question_escalates_at_the_level_it_screens_for():
    for question, level in ((ASKED, "emergency"), (RedFlagQuestion("urgent", True), "urgent")):
        decided = _dispose("yes", red_flag=question)
        assert decided.action is Action.ESCALATE and decided.level == level and RED_FLAG_SIGN in decided.signs


def test_the_more_serious_reading_wins_over_the_answer():
    decided = _dispose("yes and my vision went blurry", red_flag=RedFlagQuestion("urgent", True))
    assert decided.action is Action.ESCALATE and decided.level == "emergency"


def test_a_late_yes_goes_to_a_person_not_to_an_escalation_nor_a_thanks():
    decided = _dispose("yes", red_flag=LATE)
    assert decided.action is Action.REVIEW and decided.reason == "unclear_answer"


def test_no_to_the_question_is_ok_but_danger_in_the_free_text_still_escalates():
    assert _dispose("no", red_flag=ASKED).action is Action.ANSWER
    assert _dispose("nope but the skin on my nose looks grey and blotchy", red_flag=ASKED).action is Action.ESCALATE


def test_photos_and_open_escalations_are_never_answered_by_a_robot():
    assert _dispose("a bit of bruising", num_media=1).action is Action.REVIEW
    assert _dispose("a bit of bruising", open_escalation=True).action is Action.SILENT
    assert _dispose("my lip went white", open_escalation=True).action is Action.ESCALATE


def test_only_signs_the_clinic_wrote_an_answer_for_are_answered_automatically():
    assert _dispose("some swelling and a small bruise").action is Action.ANSWER
    decided = dispose(triage("some swelling", "en"), answerable=frozenset({"bruising"}))
    assert decided.action is Action.REVIEW and decided.reason == "unanswered_sign"


@pytest.mark.parametrize("text", ["when can I go back to the gym?", "uhh the thingy is doing a thing"])
def test_questions_and_unplaced_replies_go_to_review(text):
    assert _dispose(text).action is Action.REVIEW


@pytest.mark.parametrize(("text", "language"), [
    ("kak bibirku masih bengkak, boleh pakai lipstik belum ya?", "id"),
    ("my cheeks are still a bit swollen, can I wear makeup yet?", "en"),
    ("👍", None),
])
def test_the_reply_language_is_read_per_message(text, language):
    assert message_language(text) == language


@pytest.mark.parametrize("text", ["yes", "no", "ya kak", "2"])
def test_a_bare_yes_or_no_with_no_open_red_flag_question_goes_to_a_person(text):
    # It may answer "pus or fever?" or "happy with how it healed?": nobody can tell without reading the thread.
    decided = _dispose(text)
    assert decided.action is Action.REVIEW and decided.reason == "unclear_answer"


def test_a_sentence_opening_with_no_is_read_as_the_sentence():
    assert _dispose("no problems at all, thanks!").action is Action.ANSWER


@pytest.mark.parametrize("text", ["some redness where the needles went, is that a fever sign? I feel hot",
                                  "bengkak dikit kak, boleh renang besok?", "bruised a bit. can I take ibuprofen?"])
def test_a_question_the_written_answer_cannot_answer_goes_to_a_person(text):
    decided = dispose(triage(text, "en"), answerable=answerable_signs(), asks=asks_beyond_normal(text))
    assert decided.action in (Action.REVIEW, Action.ESCALATE)


@pytest.mark.parametrize("text", ["a bit of swelling on my lip, is that normal?", "memar dikit kak, wajar gak?"])
def test_is_this_normal_about_a_routine_sign_gets_its_written_answer(text):
    decided = dispose(triage(text, "en"), answerable=answerable_signs(), asks=asks_beyond_normal(text))
    assert decided.action is Action.ANSWER
