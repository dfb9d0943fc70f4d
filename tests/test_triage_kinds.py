"""One test per kind of phrasing issue 7 names, each written with new wording (not the issue's examples, not the
dev sets): descriptions by comparison, loss of function, airway by sensation, capillary refill, numbers, infection
by metaphor, late onset, the false alarms, and the enrollment context (treatment, days since)."""

from __future__ import annotations

import pytest

from aftercare.triage import TriageLevel, triage

EMERGENCY, URGENT, ROUTINE, OK = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.ROUTINE, TriageLevel.OK)


def level(text: str, lang: str = "en", **context) -> TriageLevel:
    return triage(text, lang, **context).level


@pytest.mark.parametrize("text, lang", [
    ("my upper lip has gone the colour of plaster since the filler", "en"),
    ("bottom lip looks like it was rolled in chalk, filler at lunch", "en"),
    ("nose tip has turned a sort of putty colour and it stings", "en"),
    ("there's no colour at all in my lip now, 1 hour after", "en"),
    ("lip has gone navy on one side since this morning", "en"),
    ("cheek looks like a bruised aubergine already, filler 3 hours ago", "en"),
    ("bibir atas warnanya kayak lilin kak abis filler", "id"),
    ("pipi aku warnanya kayak terong abis filler tadi", "id"),
])
def test_a_colour_told_by_comparison_is_an_occlusion_sign(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("when I push on the spot it stays pale for ages, filler yesterday", "en"),
    ("pressed my lip and the pink never came back for like 10 seconds", "en"),
    ("kalo ditekan putihnya lama banget kak baru balik", "id"),
])
def test_colour_slow_to_come_back_after_pressing_is_an_emergency(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("I can only see the bottom part of the page with my right eye since the filler", "en"),
    ("keep bumping into things on my right side since the forehead filler", "en"),
    ("my left eye won't look up with the other one", "en"),
    ("my right eye lags behind when I look across the room", "en"),
    ("my words come out all wrong since the filler, can't say what I mean", "en"),
    ("I keep dropping my cup, my right hand has no grip, filler this morning", "en"),
    ("when I smile only the left side goes up", "en"),
    ("right side of my face feels heavy and slack", "en"),
    ("separuh pandangan mata kiri aku gelap kak abis filler", "id"),
    ("mata kanan gak ikut gerak kalo aku lirik ke kiri", "id"),
    ("senyum aku mencong ke kiri kak abis filler pipi", "id"),
    ("hp aku jatuh terus dari tangan kanan, ga kuat megang", "id"),
    ("kata2 aku keluar berantakan kak, susah ngomong", "id"),
])
def test_a_loss_of_function_is_a_stroke_or_eye_emergency(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("it's like breathing through a pillow since the booster", "en"),
    ("my chest makes a whistling noise when I breathe, booster 10 mins ago", "en"),
    ("my voice has gone hoarse and thick since the booster", "en"),
    ("lips swelling up by the minute after the profhilo", "en"),
    ("napas aku kayak lewat sedotan kak abis booster", "id"),
    ("suara aku serak banget abis booster 10 menit lalu", "id"),
])
def test_airway_trouble_told_by_sensation_is_an_emergency(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("feeling awful, 102.3 tonight", "en"),
    ("thermometer says 38,4 this evening", "en"),
    ("suhu badan 38,9 kak", "id"),
])
def test_a_temperature_with_or_without_its_unit_is_a_fever(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("the injection points look like tiny volcanoes with white middles", "en"),
    ("one spot is crying a sticky fluid all day", "en"),
    ("yellowish stains on my pillow from the spot on my cheek", "en"),
    ("there's a crater forming where the needle went in", "en"),
    ("borok di dagu makin dalam kak", "id"),
    ("bekas suntik ada mata kuningnya kak", "id"),
])
def test_infection_told_by_metaphor_is_urgent(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("six weeks after my lip filler there's a firm, sore swelling on the left", "en"),
    ("4 weeks after cheek filler, suddenly swollen, hard and hot", "en"),
    ("a month after meso I've got painful lumps on my tummy", "en"),
    ("5 minggu abis filler dagu tiba2 bengkak keras dan nyeri", "id"),
])
def test_a_hard_tender_swelling_weeks_later_is_urgent(text, lang):
    assert level(text, lang) is URGENT


def test_the_same_swelling_on_the_first_day_is_routine():
    assert level("day 1, lip swollen and a bit tender and firm") is ROUTINE


@pytest.mark.parametrize("text, lang", [
    ("faint hint of a bruise near the corner, all good", "en"),
    ("I was blind as a mole before my laser eye surgery lol, the filler looks great", "en"),
    ("the leaflet covered infection, blindness and necrosis. I just have a small bruise", "en"),
    ("my dad had a stroke last year so I'm a nervous wreck, but my lips are fine", "en"),
    ("the tiny bumps feel like little beads under the skin, day 0 after the booster", "en"),
    ("the booster left blebs all over my cheeks today", "en"),
    ("my age spots look darker after the IPL, is that the treatment working?", "en"),
    ("face feels chilly from the air con in the car but colour is normal", "en"),
    ("vision was smudgy earlier but it was my contact lens, swapped it and all clear", "en"),
    ("felt a bit faint when the needle went in but that passed straight away", "en"),
    ("checked for pus, none. Just a little red", "en"),
    ("perawatnya jelasin risiko kayak infeksi, kebutaan, stroke. aku cuma memar dikit", "id"),
    ("kakak aku dulu pernah stroke, jadi aku parno. bibir aku aman kok", "id"),
    ("dingin banget di kantor kak, AC nya kenceng, muka aman", "id"),
    ("flek hitam aku jadi lebih gelap abis laser, normal kan?", "id"),
])
def test_false_alarms_are_not_escalated(text, lang):
    assert level(text, lang) in (OK, ROUTINE)


def test_one_negation_denies_a_whole_list_after_it():
    assert level("none of those warning signs here, the fever, the pus, the white patches. just itchy") is ROUTINE


def test_a_relative_reporting_the_patients_signs_is_not_a_third_party():
    assert level("I'm her husband, she had filler at noon and now her speech is slurred") is EMERGENCY
    assert level("saya suaminya kak, istri saya abis filler, ngomongnya pelo") is EMERGENCY


def test_a_mixed_language_reply_is_read_with_both_lexicons():
    assert level("kak my lip jadi pucat banget since the filler") is EMERGENCY


# --- basis ---------------------------------------------------------------------------------------------------
def test_basis_says_a_sign_decided():
    assert triage("a bit of bruising on day 2").basis == "signs"


def test_basis_gives_the_quiet_reason():
    assert triage("thanks so much, all lovely").basis == "positive"
    assert triage("no swelling, no bruising").basis == "denied"
    assert triage("").basis == "empty"
    assert triage("when can I wear makeup?").basis == "question"


def test_an_unrecognised_description_is_unplaced_not_ok():
    result = triage("my lip has gone the colour of a strange cloud, thanks")
    assert result.level is ROUTINE and result.basis == "unplaced"


def test_a_routine_sign_with_an_unplaced_comparison_claims_no_certainty():
    result = triage("lip a bit swollen and the tip looks kinda like a weird shell")
    assert result.level is ROUTINE and result.basis == "unplaced"


def test_basis_is_in_the_dict():
    assert triage("a little redness").to_dict()["basis"] == "signs"


# --- enrollment context --------------------------------------------------------------------------------------
def test_the_enrollment_day_places_a_swelling_with_no_time_stated():
    text = "my lip has a hard red tender swelling"
    assert level(text, treatment="dermal-filler", days_since=35) is URGENT
    assert level(text, treatment="dermal-filler", days_since=1) is ROUTINE
    assert level(text) is ROUTINE


def test_the_reply_own_day_wins_over_the_enrollment_day():
    assert level("day 1 and my lip is hard, red and tender", treatment="dermal-filler", days_since=40) is ROUTINE


def test_bumps_on_the_day_of_a_booster_are_routine():
    assert level("lots of little bumps on my cheeks", treatment="skin-booster", days_since=0) is ROUTINE


def test_lumps_weeks_after_mesotherapy_are_urgent_from_the_enrollment_alone():
    assert level("got a few lumps on my belly", treatment="mesotherapy", days_since=21) is URGENT


def test_the_reply_own_treatment_wins_over_the_enrollment_treatment():
    # Enrolled for filler, but the reply speaks of the IPL: blotchiness after a light treatment is not an occlusion.
    assert level("skin is blotchy after the IPL", treatment="dermal-filler", days_since=1) is URGENT
    assert level("skin is blotchy", treatment="laser-resurfacing", days_since=1) is URGENT
    assert level("skin is blotchy", treatment="dermal-filler", days_since=1) is EMERGENCY


def test_an_unknown_treatment_key_is_ignored():
    assert level("lip is white", treatment="no-such-thing", days_since=2) is EMERGENCY


# Pain told by what it does to the patient: kept awake by it, begging for mercy, "killing me".
@pytest.mark.parametrize("text", [
    "semalem gak bisa tidur saking nyerinya di bibir kak",
    "bibir kanan perihnya minta ampun, baru abis filler",
    "ga bs tidur, sakit bgt di pipi yg difiller",
    "the throbbing in my top lip is killing me, filler was at noon",
])
def test_pain_told_by_what_it_does_is_severe_pain(text):
    result = triage(text, "id")
    assert result.level is TriageLevel.EMERGENCY and "severe_pain" in result.signs


@pytest.mark.parametrize("text", [
    "gak bisa tidur kak soalnya excited liat hasilnya, gak sakit sama sekali",
    "can't sleep because I'm so excited, no pain at all",
])
def test_sleeplessness_without_pain_is_no_pain_sign(text):
    assert triage(text, "en").level in (TriageLevel.OK, TriageLevel.ROUTINE)


@pytest.mark.parametrize("text", ["ruam merah gatal se tubuh kak abis meso, napas normal",
                                  "bentol2 di satu badan abis booster td, tenggorokan aman"])
def test_hives_over_the_whole_body_written_apart_are_widespread(text):
    assert triage(text, "id").level is TriageLevel.URGENT
