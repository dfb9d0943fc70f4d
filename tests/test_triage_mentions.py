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
    ("rate my pain 9/10", "en"),
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
    ("watched a clip about filler and the lip went white straight after", "en"),
    ("read a thread on blindness, the vision went blurry an hour after", "en"),
    ("nonton video soal filler, bibir jadi ungu kak", "id"),
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


@pytest.mark.parametrize("text, lang", [
    ("feel like a million dollars, thanks so much", "en"),
    ("glass skin achieved, zero issues", "en"),
    ("slept like a log, face is perfect", "en"),
    ("my husband says I look like a new woman, no problems at all", "en"),
    ("Will recommend you to everyone. Healing nicely", "en"),
    ("my colleague got puffy eyes from hers, and me? nothing at all, all good", "en"),
    ("makasih udah ngecek kak, semua aman", "id"),
    ("kulit kayak kaca kak, makasih", "id"),
    ("udah ga napa2 kak, memarnya udah pudar semua", "id"),
])
def test_praise_idioms_and_thanks_for_asking_are_ok(text, lang):
    assert level(text, lang) is OK


@pytest.mark.parametrize("text", [
    "all good. can I use my retinol tonight",
    "is my lip supposed to be this swollen",
    "lips are fine, should I keep icing",
])
def test_a_question_without_a_question_mark_still_asks(text):
    assert level(text) is ROUTINE


@pytest.mark.parametrize("text, lang", [
    ("my cheek looks grey in the selfie but thats the ring light, irl just a little puffy", "en"),
    ("in the picture my lip looks blue but it was the lighting in the bathroom, just swollen", "en"),
    ("di foto bibirku keliatan biru tapi ternyata filter hp, aslinya cuma bengkak dikit", "id"),
])
def test_a_harmless_cause_told_after_but_explains_the_colour(text, lang):
    assert level(text, lang) is ROUTINE


def test_a_cause_ruled_out_explains_nothing():
    assert level("my lip is blue in real life too, not just the photo") is EMERGENCY


@pytest.mark.parametrize("text, want", [
    ("dropped my phone in the bath lol, lips are fine just swollen", ROUTINE),
    ("the only fuzzy thing is my memory of last night haha, face is great", OK),
    ("there's a lump the size of a grape in my cheek, day 3", ROUTINE),
    ("keep dropping my cup, my hand feels weak since the filler", EMERGENCY),
    ("my words are coming out wrong now", EMERGENCY),
    ("my lip looks like a grape, dark purple and cold", EMERGENCY),
])
def test_everyday_words_near_a_sign_are_told_apart_from_the_sign(text, want):
    assert level(text) is want


@pytest.mark.parametrize("text, lang, want", [
    ("5 weeks after under-eye filler there's a bluish grey shadow, painless and not changing", "en", ROUTINE),
    ("lengan sama punggung bentol2 gatal semuanya kak abis meso, napas normal", "id", URGENT),
    ("benjolan bekas suntik meso ujungnya putih, hari ke-5, makin nyeri", "id", URGENT),
    ("the laser spots flaked off this morning, skin is clear, nothing else", "en", OK),
    ("flek yg gelap udah rontok kak, hasilnya bagus", "id", OK),
])
def test_late_tints_widespread_hives_pustules_and_shed_pigment(text, lang, want):
    assert level(text, lang) is want


@pytest.mark.parametrize("text, lang, want", [
    ("pusing banget mikirin tagihan kak, bibir cuma memar dikit", "id", ROUTINE),
    ("day 4 now, one small bump near the lip, should I wait for the 2 week check?", "en", ROUTINE),
    ("smile is a little uneven but it's just the lip more puffy at the right", "en", ROUTINE),
    ("yg dokter jelasin soal bibir jadi ungu atau pucat itu ga ada kak, aman semua", "id", OK),
])
def test_words_of_another_language_an_appointment_or_the_clinic_warning_are_not_signs(text, lang, want):
    assert level(text, lang) is want


def test_a_bump_weeks_after_treatment_is_still_late_when_an_appointment_is_named_too():
    assert level("3 weeks after filler there's a bump near my lip, see you at the review") is URGENT


@pytest.mark.parametrize("text, lang", [
    ("top lip looks purple because I just had a blackcurrant smoothie", "en"),
    ("my mouth went blue from the slushie at the cinema", "en"),
    ("cheeks all purple from sobbing at a sad film, feeling silly", "en"),
    ("lip is white from the numbing cream, the nurse said that's expected", "en"),
    ("bibir aku ungu karena abis minum jus anggur kak", "id"),
    ("muka merah keunguan gara2 nangis semalem", "id"),
])
def test_a_colour_explained_by_food_drink_crying_or_numbing_cream_is_not_an_occlusion(text, lang):
    assert level(text, lang) in (OK, ROUTINE)


@pytest.mark.parametrize("text, lang", [
    ("top lip looks purple because I had a blackcurrant smoothie and it feels cold to touch", "en"),
    ("my mouth went blue from the slushie and it is throbbing badly", "en"),
    ("lip is white from the numbing cream and it hurts", "en"),
    ("bibir aku ungu karena minum jus anggur tapi dingin banget", "id"),
    ("bibir ungu gara2 makan permen dan nyeri", "id"),
    ("lip went purple after eating lunch", "en"),
])
def test_a_colour_with_pain_or_cold_or_no_harmless_cause_is_still_raised(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("turned pale as a sheet when I opened my credit card statement, the face is perfect though", "en"),
    ("went grey as a ghost when I checked my bank balance haha", "en"),
    ("langsung pucat pas liat total biayanya kak wkwk, hasilnya bagus", "id"),
    ("pucet liat harganya kak hehe", "id"),
])
def test_an_idiom_of_colour_about_money_or_feelings_is_no_sign(text, lang):
    assert level(text, lang) in (OK, ROUTINE)


@pytest.mark.parametrize("text, lang", [
    ("my lip went white when I saw it in the mirror", "en"),
    ("lip is as white as a ghost since this morning", "en"),
    ("bibir aku pucat pas aku liat di kaca", "id"),
])
def test_a_colour_seen_on_the_treated_area_is_still_raised(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("my daughter is running a temperature, can we push the review to next week?", "en"),
    ("my little boy has come down with a fever so I may be late", "en"),
    ("anak saya lagi demam kak, kontrolnya bisa dimundurin?", "id"),
    ("suami aku lagi meriang, jadwal cek bisa ganti hari?", "id"),
])
def test_a_relatives_illness_with_no_treatment_link_is_a_third_party_a_person_reads(text, lang):
    assert level(text, lang) is ROUTINE


@pytest.mark.parametrize("text, lang, expected", [
    ("bibir anak saya jadi biru abis filler", "id", EMERGENCY),
    ("my daughter had her lips done yesterday and now she has a fever", "en", URGENT),
    ("my son's nose is grey where the filler went", "en", EMERGENCY),
    ("istri saya abis filler, sekarang demam kak", "id", URGENT),
    ("my mum's cheek went blue after her filler", "en", EMERGENCY),
])
def test_a_relatives_sign_tied_to_the_treatment_is_the_patients(text, lang, expected):
    assert level(text, lang) is expected


@pytest.mark.parametrize("text, lang", [
    ("I passed out when I heard the news about my promotion, face is great", "en"),
    ("blacked out when I opened the invoice haha, all good otherwise", "en"),
    ("pingsan liat saldo abis bayar kak wkwk", "id"),
])
def test_fainting_at_money_or_news_is_an_idiom_not_a_faint(text, lang):
    assert level(text, lang) in (OK, ROUTINE)


@pytest.mark.parametrize("text, lang", [
    ("passed out on the bathroom floor after the injection", "en"),
    ("tadi siang pingsan abis filler kak", "id"),
])
def test_a_faint_after_treatment_is_still_raised(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("since the filler yesterday the words on my phone keep dancing", "en"),
    ("the letters in my book are swimming since the under-eye filler", "en"),
    ("abis filler bawah mata tulisannya joget2 kak", "id"),
])
def test_reading_trouble_told_by_what_the_text_does_is_a_vision_change(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("day 6 and the lump in my chin feels squishy and really tender", "en"),
    ("day 5, the swelling feels like a little water balloon and it hurts", "en"),
    ("hari ke-7 bengkaknya lembek gitu dan nyeri kalo dipegang", "id"),
])
def test_a_soft_fluid_filled_sore_swelling_is_an_abscess(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("hari ke-4 bengkaknya malah makin besar & hangat, padahal kemarin udah kempes", "id"),
])
def test_a_swelling_that_grows_warm_again_after_going_down_is_urgent(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("bibir sempet putih pucat sebentar trus balik lagi normal", "id"),
    ("the pale patch on my lip was there this morning, gone by teatime", "en"),
])
def test_an_occlusion_sign_that_came_and_went_is_urgent_not_an_emergency(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("bibir putih pucat dari tadi", "id"),
    ("the pale patch on my lip is still there", "en"),
])
def test_an_occlusion_sign_still_there_is_an_emergency(text, lang):
    assert level(text, lang) is EMERGENCY


@pytest.mark.parametrize("text, lang", [
    ("ada guratan merah kayak urat dari dagu turun ke leher", "id"),
])
def test_a_red_line_like_a_vein_is_a_streak_of_infection_not_a_net(text, lang):
    assert level(text, lang) is URGENT


@pytest.mark.parametrize("text, lang", [
    ("skin looks normal, just warm the same as everywhere else", "en"),
    ("I'm tickled pink, thank you", "en"),
    ("it's a real pain answering all these check-ins but everything is fine", "en"),
    ("I'm feeling grand", "en"),
    ("my sister couldn't even tell I had anything done", "en"),
    ("beres semua kak, makasih", "id"),
])
def test_body_warmth_and_all_fine_idioms_are_no_sign(text, lang):
    assert level(text, lang) is OK


@pytest.mark.parametrize("text, lang", [
    ("my cheek feels hot and it's spreading", "en"),
    ("bibir aku pink banget dan panas, sakit", "id"),
])
def test_warmth_and_pinkness_told_as_signs_still_escalate(text, lang):
    assert level(text, lang) in (URGENT, EMERGENCY)
