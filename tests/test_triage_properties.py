"""Properties of the triage scope logic that must hold for any wording, checked with generated replies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftercare.triage import TriageLevel, triage

settings.register_profile("triage", deadline=None)  # the machine may be busy; correctness is what is tested here
settings.load_profile("triage")
triage("warm up")  # load the lexicons before any timed example

# Sign phrases as patients write them, each alarming on its own (urgent or emergency).
ALARMING_EN = [
    "white patch", "blue lips", "grey skin", "mottled skin", "blotchy purple patches", "severe pain", "throbbing pain",
    "blurry vision", "double vision", "fever", "chills", "pus", "yellow discharge", "red streak", "blisters",
    "cold skin", "pale lip", "dusky nose", "hives all over", "swollen tongue", "tight throat", "trouble breathing",
    "drooping eyelid", "slurred speech", "abscess", "oozing",
]
ALARMING_ID = [
    "pucat", "kebiruan", "biru", "ungu", "belang belang", "nyeri hebat", "demam", "menggigil", "nanah", "bernanah",
    "cairan kuning", "sesak napas", "penglihatan kabur", "bisul", "kulit dingin", "lepuhan", "garis merah",
]
NEGATIONS_EN = ["no", "not", "never had", "without", "no sign of", "i dont have", "there is no", "zero", "nothing like"]
NEGATIONS_ID = ["gak", "ga", "nggak", "tidak", "tidak ada", "ga ada", "belum", "enggak", "bukan"]
NO_LONGER = ["no longer", "no more", "udah gak", "sudah tidak"]
OWN_STATEMENTS = ["my own lips look lovely", "me, I only have a small bruise", "aku sendiri cuma memar dikit"]
THIRD_PARTIES = ["my friend had", "my sister got", "my mum had", "a girl at work had", "temen aku", "adikku lagi"]
HYPOTHETICALS = ["what if i get", "what should i do if i get", "should i worry if i see", "kalau nanti",
                 "in case of", "how do i know if i have"]
BENIGN = [
    "all good thanks", "a bit swollen", "can I wear makeup tomorrow?", "my friend had pus once", "no fever",
    "the white was my concealer", "what if it gets infected?", "aman kak", "if it goes blue what do I do",
    "my kid has a fever", "bruise is fading", "nothing white, nothing grey", "kalau nanti bernanah gimana",
    "swelling going down", "not hot anymore", "i read lips can go white", "feeling blue today lol",
]
EMERGENCIES = [
    "My lip has gone white and cold.", "Now my vision is blurry.", "Bibir aku pucat dan dingin kak.",
    "The skin on my chin is purple and blotchy like a net.", "I cant breathe and my throat is tight.",
    "Penglihatan aku kabur.", "The pain in my nose is unbearable.", "I am seeing double.",
]
NOT_ALARMED = (TriageLevel.OK, TriageLevel.ROUTINE)

english_sign = st.sampled_from(ALARMING_EN)
indonesian_sign = st.sampled_from(ALARMING_ID)
any_sign = st.one_of(english_sign, indonesian_sign)
negated = st.one_of(
    st.tuples(st.sampled_from(NEGATIONS_EN), english_sign),
    st.tuples(st.sampled_from(NEGATIONS_ID), indonesian_sign),
).map(" ".join)


@given(sign=any_sign)
def test_every_listed_sign_alarms_on_its_own(sign):
    assert triage(sign).level in (TriageLevel.URGENT, TriageLevel.EMERGENCY)


@given(text=negated)
def test_prefixing_a_negation_to_a_single_sign_never_raises_the_level_above_routine(text):
    assert triage(text).level in NOT_ALARMED


@given(prefix=st.sampled_from(NO_LONGER), sign=any_sign)
def test_a_sign_that_is_no_longer_there_is_at_most_urgent(prefix, sign):
    assert triage(f"{prefix} {sign}").level is not TriageLevel.EMERGENCY


@given(prefix=st.sampled_from(THIRD_PARTIES), sign=any_sign, own=st.sampled_from(OWN_STATEMENTS))
def test_a_sign_someone_else_had_never_raises_the_level_above_routine(prefix, sign, own):
    # The writer tells of herself too: a relative named alone may be the patient ("my wife's lip has gone white").
    assert triage(f"{prefix} {sign}. {own}").level in NOT_ALARMED


@given(prefix=st.sampled_from(HYPOTHETICALS), sign=any_sign)
def test_a_hypothetical_sign_never_raises_the_level_above_routine(prefix, sign):
    assert triage(f"{prefix} {sign}?").level in NOT_ALARMED


@given(benign=st.lists(st.sampled_from(BENIGN), max_size=4).map(". ".join), emergency=st.sampled_from(EMERGENCIES))
def test_adding_a_real_emergency_sentence_to_benign_text_always_yields_emergency(benign, emergency):
    assert triage(f"{benign}. {emergency}").level is TriageLevel.EMERGENCY


# Severe pain alone is an emergency as a sign of vascular occlusion after an injectable; text naming a laser or a
# peel makes it urgent (still escalated, on-call paged). The other signs are emergencies whatever was done.
PAIN_ONLY = "The pain in my nose is unbearable."


@settings(max_examples=300)
@given(noise=st.text(max_size=200), emergency=st.sampled_from([e for e in EMERGENCIES if e != PAIN_ONLY]))
def test_adding_a_real_emergency_sentence_to_any_text_always_yields_emergency(noise, emergency):
    assert triage(f"{noise}\n{emergency}").level is TriageLevel.EMERGENCY


@settings(max_examples=300)
@given(noise=st.text(max_size=200))
def test_adding_unbearable_pain_to_any_text_is_always_escalated(noise):
    assert triage(f"{noise}\n{PAIN_ONLY}").level in (TriageLevel.EMERGENCY, TriageLevel.URGENT)


@pytest.mark.parametrize("treatment", ["LASER", "chemical peel", "microneedling"])
def test_unbearable_pain_after_a_named_non_injectable_treatment_is_urgent_not_emergency(treatment):
    assert triage(f"{treatment}\n{PAIN_ONLY}").level is TriageLevel.URGENT
    assert triage(f"filler\n{PAIN_ONLY}").level is TriageLevel.EMERGENCY


@given(sign=any_sign, hedge=st.sampled_from(["kinda ", "a bit ", "maybe ", "agak ", "i think i have ", "sort of "]),
       tail=st.sampled_from(["", "?", "??", " maybe?", " idk", " not sure", " kyknya"]))
def test_hedging_a_real_sign_never_lowers_it(sign, hedge, tail):
    assert triage(f"{hedge}{sign}{tail}").level is triage(sign).level


@given(text=st.text(max_size=300), lang=st.sampled_from(["en", "id", "fr", ""]))
def test_any_text_gets_a_level_signs_and_an_explanation(text, lang):
    result = triage(text, lang)
    assert result.level in set(TriageLevel)
    assert all(isinstance(sign, str) and sign for sign in result.signs)
    assert result.explanation
    assert triage(text, lang) == result


@given(sign=any_sign, thanks=st.sampled_from([" thanks!", " makasih kak", " 🙏", ". all good otherwise"]))
def test_politeness_never_lowers_the_level(sign, thanks):
    assert triage(sign + thanks).level.rank >= triage(sign).level.rank
