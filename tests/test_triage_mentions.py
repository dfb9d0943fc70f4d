"""False alarms and misses by kind, each with new wording (not from any dev or held-out file), in English and
Indonesian: scores that are not pain, warnings read about or feared, checklist answers, praise similes, and the
real signs told next to them, which must still be raised."""

from __future__ import annotations

import pytest

from aftercare.triage import TriageLevel, triage

EMERGENCY, URGENT, ROUTINE, OK = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.ROUTINE, TriageLevel.OK)


def level(text: str, lang: str = "en", **context) -> TriageLevel:
    return triage(text, lang, **context).level


@pytest.mark.parametrize("text, lang", [
    ("honestly a 9/10 experience from start to finish", "en"),
    ("rating the clinic 10/10, nothing to report", "en"),
    ("hasilnya 10/10 kak, puas banget", "id"),
])
def test_a_score_out_of_ten_with_no_pain_word_is_not_pain(text, lang):
    assert level(text, lang) is OK


@pytest.mark.parametrize("text, lang", [
    ("the throbbing is a 9/10 tonight", "en"),
    ("my lip hurts, 10/10 easily", "en"),
    ("nyerinya 9/10 kak abis filler", "id"),
])
def test_a_score_out_of_ten_next_to_a_pain_word_is_severe_pain(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("a friend forwarded me a reel about necrosis from lip filler, gave me a fright, but mine looks great", "en"),
    ("was scrolling and found an article on vision loss after nose filler, all fine over here though", "en"),
    ("I was scared of a stroke before the appointment but honestly everything is perfect", "en"),
    ("nonton di youtube soal bibir yg jadi pucat abis filler, ngeri, tapi punyaku baik2 aja", "id"),
    ("sempet khawatir kebutaan kak tapi sejauh ini aman semua", "id"),
])
def test_a_warning_read_about_or_feared_is_a_mention_not_a_sign(text, lang):
    assert level(text, lang) is not EMERGENCY
    assert level(text, lang) in (OK, ROUTINE)


@pytest.mark.parametrize("text, lang", [
    ("watched a video on blindness and now the vision in my right eye is blurry", "en"),
    ("saw a post about occlusion, today the side of my lip is grey", "en"),
    ("I'm worried about stroke because my smile is lopsided and my arm feels heavy", "en"),
    ("baca artikel soal oklusi, sekarang bibir aku pucat banget", "id"),
])
def test_a_real_sign_after_a_warning_read_about_is_still_raised(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("looked for a fever like the leaflet said: nothing. just a bit puffy", "en"),
    ("any yellow pus? nah. the injection points are a little pink", "en"),
    ("cek nanah kak: ga ada. cuma merah dikit", "id"),
])
def test_a_checklist_answer_after_the_sign_denies_it(text, lang):
    assert level(text, lang) is ROUTINE


def test_an_answer_that_is_itself_a_question_denies_nothing():
    assert level("my lip looks white, nothing?") is EMERGENCY


def test_an_answer_inside_a_clause_is_an_ordinary_negation():
    assert level("my temperature is 38.9 and nothing brings it down") is URGENT
