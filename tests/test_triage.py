"""Safety triage: the labelled dev set's figures, the public API, and one test per rule of the scope logic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aftercare.triage import TriageLevel, TriageResult, triage

EMERGENCY, URGENT, ROUTINE, OK = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.ROUTINE, TriageLevel.OK)
ESCALATED = {"urgent", "emergency"}
# The shared development sets beside the checkout when present (the freshest copies), else the copies in
# tests/data, so a clean clone anywhere still checks the thresholds. Each set is checked on its own.
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "triage"
_DATA = Path(__file__).resolve().parent / "data"
DEVSETS = {
    "dev": Path(os.environ.get("AFTERCARE_TRIAGE_DEVSET")
                or (_SHARED / "dev.jsonl" if (_SHARED / "dev.jsonl").is_file() else _DATA / "triage_dev.jsonl")),
    "dev2": _SHARED / "dev2.jsonl" if (_SHARED / "dev2.jsonl").is_file() else _DATA / "triage_dev2.jsonl",
}


def level(text: str, lang: str = "en") -> TriageLevel:
    return triage(text, lang).level


# --- the labelled dev sets -----------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=sorted(DEVSETS))
def devset(request) -> list[tuple[dict, TriageResult]]:
    path = DEVSETS[request.param]
    if not path.is_file():
        pytest.skip(f"triage dev set not found at {path}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(row, triage(row["text"], row["lang"])) for row in rows]


def _misclassified(pairs: list[tuple[dict, TriageResult]]) -> str:
    return "\n".join(f"{row['id']} labelled {row['level']}, triaged {result.level.value} {result.signs}: {row['text']}"
                     for row, result in pairs)


def test_devset_emergency_recall_is_total(devset):
    missed = [(row, result) for row, result in devset if row["level"] == "emergency" and result.level is not EMERGENCY]
    assert not missed, "missed emergencies:\n" + _misclassified(missed)


def test_devset_urgent_or_emergency_recall_is_at_least_98_percent(devset):
    escalations = [(row, result) for row, result in devset if row["level"] in ESCALATED]
    missed = [(row, result) for row, result in escalations if result.level.value not in ESCALATED]
    assert 1 - len(missed) / len(escalations) >= 0.98, "not escalated:\n" + _misclassified(missed)


def test_devset_escalation_precision_is_at_least_90_percent(devset):
    raised = [(row, result) for row, result in devset if result.level.value in ESCALATED]
    false_alarms = [(row, result) for row, result in raised if row["level"] not in ESCALATED]
    assert 1 - len(false_alarms) / len(raised) >= 0.90, "false alarms:\n" + _misclassified(false_alarms)


def test_devset_exact_level_accuracy_is_at_least_90_percent(devset):
    wrong = [(row, result) for row, result in devset if result.level.value != row["level"]]
    assert 1 - len(wrong) / len(devset) >= 0.90, "wrong level:\n" + _misclassified(wrong)


# --- public API ----------------------------------------------------------------------------------------------
def test_result_carries_level_signs_and_explanation():
    result = triage("my lip went white and it hurts so bad", "en")
    assert isinstance(result, TriageResult)
    assert result.level is EMERGENCY
    assert result.signs == ["blanching", "severe_pain"]
    assert result.explanation.startswith("possible vascular occlusion: ")
    assert "white" in result.explanation and "pain" in result.explanation


def test_to_dict_is_plain_json():
    result = triage("no fever but some pus", "en").to_dict()
    assert result == {"level": "urgent", "signs": ["pus"], "explanation": result["explanation"], "basis": "signs"}
    assert json.loads(json.dumps(result)) == result


def test_level_is_a_string_enum_in_order_of_seriousness():
    assert EMERGENCY == "emergency" and OK == "ok"
    assert EMERGENCY.rank > URGENT.rank > ROUTINE.rank > OK.rank


def test_unknown_language_uses_both_lexicons():
    assert level("bibir aku pucat dan dingin", "fr") is EMERGENCY
    assert level("my lip is white and cold", "xx") is EMERGENCY


def test_both_lexicons_apply_whatever_the_profile_says():
    assert level("kak my lip kok jadi pucat gini", "en") is EMERGENCY
    assert level("aku demam and theres pus", "id") is URGENT


def test_empty_and_emoji_only_replies():
    assert level("") is OK
    assert level("👍") is OK
    assert level("🙏😊") is OK
    assert level("😭😭") is ROUTINE


def test_signs_are_listed_most_serious_first_without_repeats():
    result = triage("fever, pus, fever again and now my lip is white")
    assert result.signs == ["blanching", "fever", "pus"]


# --- the levels ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "my lip is going white", "the tip of my nose looks grey", "cheek is kinda blue", "chin looks mottled",
    "theres a lacy purple pattern", "the skin feels cold to touch", "the pain is unbearable", "throbbing like crazy",
    "my vision went blurry", "seeing double", "my eyelid is drooping", "my face is drooping and speech is slurred",
    "my throat is closing up", "i cant breathe", "dark scab where the filler went", "blisters over the filler",
])
def test_occlusion_eye_stroke_and_anaphylaxis_signs_are_emergencies(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "i have a fever", "chills all night", "theres pus", "it keeps oozing", "yellow discharge", "hot to the touch",
    "red streak up my neck", "redness is spreading", "hard painful lump 4 weeks after meso", "hives everywhere",
    "swelling is worse on day 4",
])
def test_infection_and_allergy_signs_are_urgent(text):
    assert level(text) is URGENT


@pytest.mark.parametrize("text", [
    "a bit red", "swollen lips", "small bruise", "tender when I press", "itchy", "small bumps on day 1",
    "peeling after the peel", "can I wear makeup tomorrow?", "when can i go to the gym",
])
def test_expected_effects_and_questions_are_routine(text):
    assert level(text) is ROUTINE


@pytest.mark.parametrize("text", ["all good thanks!", "perfect", "aman kak", "no issues", "looks amazing 😍"])
def test_no_complaint_is_ok(text):
    assert level(text) is OK


# --- negation --------------------------------------------------------------------------------------------------
def test_a_negated_sign_does_not_alarm():
    assert level("no fever, no pus, just a bit red") is ROUTINE
    assert level("not hot or painful") is OK


def test_a_negation_reaches_every_sign_listed_with_or():
    assert level("nothing is white or grey or anything weird") is OK
    assert level("no fever, chills or pus") is OK


def test_a_negation_stops_at_but():
    assert level("no swelling but my lip is white") is EMERGENCY
    assert level("no fever tapi ada nanah") is URGENT


def test_a_negation_stops_at_a_new_clause_with_a_new_subject():
    assert level("no swelling, lip is white") is EMERGENCY
    assert level("no swelling and my lip is white") is EMERGENCY


def test_a_comma_without_or_does_not_extend_a_negation():
    assert level("no fever, chills all night") is URGENT


def test_a_sign_that_contains_a_negation_word_is_still_a_sign():
    assert level("i cant see properly out of my left eye") is EMERGENCY
    assert level("paracetamol not touching the pain") is EMERGENCY


def test_indonesian_negations():
    for text in ["gak demam", "nggak bernanah", "ga ada nanah", "tidak ada demam", "belum demam", "udah gak panas",
                 "bukan memar", "tanpa demam", "engga bengkak", "ngga pucat kok"]:
        assert level(text, "id") in (OK, ROUTINE), text


def test_question_tags_are_not_negations():
    assert level("bibir aku putih, normal ga ya?", "id") is EMERGENCY
    assert level("kak ini wajar gak, bibirnya kebiruan", "id") is EMERGENCY


def test_a_pseudo_negation_does_not_deny_the_sign():
    assert level("white patch on my lip that hasnt gone away") is EMERGENCY
    assert level("not sure if its white or just pale") is EMERGENCY
    assert level("bibirnya pucat udah 3 jam gak ilang", "id") is EMERGENCY


# --- resolution and passed signs -------------------------------------------------------------------------------
def test_resolved_expected_effects_do_not_alarm():
    assert level("swelling going down, not hot anymore, still a lil tender") is ROUTINE
    assert level("bengkaknya udah turun kak, udah gak panas lagi", "id") is ROUTINE
    assert level("the bruise is completely gone now, doing well") is OK


def test_a_fever_that_is_gone_does_not_alarm():
    assert level("i had a fever last week before the treatment but its gone, skin is just a bit pink") is ROUTINE


def test_passed_occlusion_sign_is_urgent():
    result = triage("my top lip went really pale and cold for about an hour last night, looks normal again today")
    assert result.level is URGENT
    assert result.signs == ["passed_blanching", "passed_cold_skin"]
    assert "passed" in result.explanation


def test_passed_occlusion_sign_is_urgent_in_indonesian():
    assert level("semalem ujung hidung sempet kebiruan sebentar kak, pagi ini udah normal lagi", "id") is URGENT


def test_a_sign_that_lasts_is_not_passed():
    assert level("its been white for an hour now") is EMERGENCY
    assert level("went white an hour ago and is still white") is EMERGENCY


def test_settled_pain_is_not_a_passed_warning_sign():
    assert level("no more throbbing, all good") is OK


def test_a_question_about_recovery_is_not_recovery():
    assert level("my lip is white, is that normal?") is EMERGENCY


# --- hypotheticals ---------------------------------------------------------------------------------------------
def test_hypothetical_signs_do_not_alarm():
    assert level("what if it gets pus?") is ROUTINE
    assert level("if my lip goes blue what do i do? just want to know in advance") is ROUTINE
    assert level("kalau nanti bernanah harus gimana ya kak?", "id") is ROUTINE
    assert level("should I be worried if my lip turns white?") is ROUTINE


def test_informational_questions_do_not_alarm():
    assert level("what are the signs of infection to watch for?") is ROUTINE
    assert level("The leaflet says to call if I see white patches - I haven't, can I use sunscreen?") is ROUTINE


def test_a_present_sign_after_a_hypothetical_clause_still_alarms():
    assert level("idk if this counts but theres a red streak") is URGENT
    assert level("if it was just bruising i wouldnt worry but its white and cold") is EMERGENCY


def test_will_it_questions_are_about_the_future():
    assert level("will it swell more tomorrow?") is ROUTINE


# --- third parties ---------------------------------------------------------------------------------------------
def test_third_party_signs_do_not_alarm():
    assert level("my friend got an infection after her filler, mine is just a bit swollen") is ROUTINE
    assert level("my kid has a fever so I might be slow to reply but skin is good") is OK
    assert level("temen aku katanya sampe demam abis meso, aku sih cuma kemerahan dikit", "id") is ROUTINE


def test_a_third_party_scope_ends_when_the_patient_speaks_of_herself():
    assert level("my husband says my lips look purple") is EMERGENCY
    assert level("pacar aku bilang bibirku biru", "id") is EMERGENCY


# --- harmless explanations, bruises and idioms ----------------------------------------------------------------
def test_a_harmless_explanation_cancels_the_colour():
    assert level("the white patch was my concealer lol, all fine") is OK
    assert level("the blue on my cheek was just the marker pen, still a little red") is ROUTINE
    assert level("tadi kirain bibir aku kebiruan ternyata lipstik aku", "id") is OK


def test_a_hedged_explanation_does_not_cancel_the_colour():
    assert level("it looks kinda bluish near my lip? might just be the light") is EMERGENCY
    assert level("blotchy bluey patches like a net, is it the lighting?") is EMERGENCY


def test_an_explanation_only_covers_its_own_sign():
    assert level("the white patch was my concealer but my chin is blue and cold") is EMERGENCY


def test_a_bruise_explains_its_colour():
    assert level("little bruise on my lip where the needle went, its kinda purple-yellow now") is ROUTINE
    assert level("ada memar kecil di bekas jarum kak, biru dikit doang", "id") is ROUTINE


def test_a_colour_elsewhere_is_not_the_bruise():
    assert level("small bruise on my chin and my lip is blue") is EMERGENCY
    assert level("it doesnt look like a normal bruise, purple and spreading in a net pattern") is EMERGENCY
    assert level("bibir atas agak ungu keabuan, bukan memar kyknya", "id") is EMERGENCY


def test_idioms_are_not_signs():
    assert level("Feeling blue today bc of work lol but the skin is perfect") is OK
    assert level("The results took my breath away 😭💕 so happy") is OK
    assert level("lips look hot af 🔥🔥 thanks babe") is OK
    assert level("kak abis laser boleh mandi air panas ga?", "id") is ROUTINE


# --- hedges ----------------------------------------------------------------------------------------------------
def test_hedged_real_signs_still_alarm():
    assert level("kinda bluish??") is EMERGENCY
    assert level("a bit grey maybe?") is EMERGENCY
    assert level("agak kebiruan", "id") is EMERGENCY
    assert level("i think i have a fever?? 37.9 idk") is URGENT


# --- days after treatment -------------------------------------------------------------------------------------
def test_worsening_swelling_is_expected_early_and_urgent_after_day_two():
    assert level("lips look more swollen this morning than right after, is that normal?") is ROUTINE
    assert level("the swelling is getting bigger on day 3") is URGENT
    assert level("bengkaknya malah makin gede di hari ke 4", "id") is URGENT


def test_lumps_are_expected_early_and_urgent_weeks_later():
    assert level("small lumps at the injection points, day 1") is ROUTINE
    assert level("new lumps on my tummy 5 weeks after meso") is URGENT
    assert level("benjolan keras dan sakit muncul sebulan abis meso", "id") is URGENT


def test_warmth_right_after_a_laser_is_expected():
    assert level("red and a bit warm right after the laser today") is ROUTINE
    assert level("hot to touch on day 3 after microneedling") is URGENT


def test_blisters_are_an_emergency_after_filler_and_urgent_after_a_laser():
    assert level("small blisters over where the filler went") is EMERGENCY
    assert level("blisters after my laser yesterday") is URGENT


# --- the more serious level wins -------------------------------------------------------------------------------
def test_the_most_serious_sign_decides():
    assert level("had a fever last night and now the area looks blanched and pale") is EMERGENCY
    assert level("hives all over and my throat is closing") is EMERGENCY
    assert level("hives all over but breathing is fine") is URGENT


def test_a_long_message_with_one_real_sign_buried_in_it_alarms():
    text = ("ok so i was fine this morning, went to work, had lunch, bit of swelling which is normal, BUT now in "
            "the mirror my left cheek has blotchy bluey patches kind of like a net and it feels sore?? sorry")
    assert level(text) is EMERGENCY


# --- exceptions never veto a real sign --------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "my lip is ice cold", "my lips feel cold and blue", "seeing double the whole time", "my lip is white on top",
    "my lip is blue and white", "headache and a throbbing lip", "lips blue and dark circles under my eyes",
    "my lip is cold today", "a bit cold skin on the tip of my nose", "the white top lip is stinging",
])
def test_a_harmless_lookalike_phrase_never_vetoes_a_real_sign_next_to_it(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "can i wear my white top tomorrow?", "feeling a bit blue today lol", "I have a cold, skin is fine",
    "can I use a cold compress?", "double chin is gone, love it", "my teeth look whiter lol",
    "blue veins showing under my eyes like always", "is a hot shower ok?", "out of the blue my skin looks amazing",
])
def test_harmless_lookalike_phrases_do_not_alarm(text):
    assert level(text) in (OK, ROUTINE)


@pytest.mark.parametrize("text", [
    "didnt bruise at all penglihatan aku kabur",
    "udah no swelling kak penglihatan aku kabur",
    "No blurred vision or anything, penglihatan aku kabur",
    "the pale look was just the lighting in my car my lip has gone white and cold",
    "sip kak, gak ada keluhan apa apa penglihatan aku kabur",
    "what if I see white patches my lip has gone white and cold",
    "nope all fine I am seeing double",
    "I havent noticed any white patches or blue bits penglihatan aku kabur",
])
def test_a_new_statement_run_on_without_punctuation_escapes_the_previous_scope(text):
    assert level(text) is EMERGENCY
