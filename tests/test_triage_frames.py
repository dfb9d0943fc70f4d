"""The kinds of reply blind writers used that the dev sets missed, each with new wording (not from any
labelled set): loss of function told as a frame (a part or faculty + a loss), a relative reporting for the
patient, airway trouble by sensation, late onset and infection by description, the false alarms, and the
explanation weak spots (only eye causes explain a vision change; a simile explains nothing; "ternyata")."""

from __future__ import annotations

import pytest

from aftercare.triage import TriageLevel, triage

EMERGENCY, URGENT, ROUTINE, OK = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.ROUTINE, TriageLevel.OK)
ESCALATED = (EMERGENCY, URGENT)
NOT_ESCALATED = (ROUTINE, OK)


def level(text: str) -> TriageLevel:
    return triage(text).level


@pytest.mark.parametrize("text", [
    "the bottom of the page just isn't there when I look with my left eye, filler at lunch",
    "half the menu went blank on the right, tear trough filler this morning",
    "people on my left keep disappearing till I turn round",
    "I can't see the top half of the screen out of my left eye",
    "the numbers on my watch keep jumping around since the temple filler",
    "my right eyeball feels stuck, it won't turn to the side",
    "penglihatan mata kiri kayak ketutup separuh kak",
    "pinggir kanan pandangan aku ilang kak abis filler",
    "tulisan di hp kayak loncat2 di mata kanan, td filler hidung",
    "mata kiri aku gak mau gerak ke kanan kak",
])
def test_part_of_the_view_lost_or_an_eye_that_will_not_move_is_an_eye_emergency(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "my husband says I'm talking funny since the filler",
    "my speech sounds drunk and I've had nothing to drink",
    "I keep slurring my words a bit since the jabs",
    "struggling to think of simple words since this afternoon",
    "coffee keeps leaking out the corner of my mouth",
    "I can't whistle since the filler this morning",
    "the left side of my face feels really heavy",
    "the spoon slipped out of my fingers twice",
    "my right arm feels useless and floppy",
    "I can't grip my hairbrush properly this afternoon",
    "ngomong aku jadi pelo kak abis filler dagu",
    "suaranya jadi aneh kak, kayak orang mabok",
    "air minum netes dari sudut mulut kiri kak",
    "gelas jatuh dari tangan aku td",
    "tangan kanan aku lemes banget kak",
    "aku gak bisa siul kak abis filler",
])
def test_speech_mouth_face_or_hand_failing_is_a_stroke_emergency(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "I can see everything fine, nothing missing, vision is normal",
    "my hand is not weak at all, I can grip fine",
    "no trouble swallowing, no tightness in my throat",
    "my friend had filler and her speech went funny, mine is fine",
])
def test_a_denied_or_someone_elses_loss_of_function_is_not_escalated(text):
    assert level(text) in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "texting on behalf of my mum, her lip has gone white since her filler",
    "my daughter had filler yesterday and now her lip is purple and cold",
    "texting for my dad, he had filler in his nose today and he says he can't see out of his right eye",
    "istri saya tadi filler hidung, sekarang ujung hidungnya pucat kak",
    "adek aku kemarin filler bibir kak, skrg bibirnya biru",
    "suami saya td filler hidung, skrg katanya pandangannya gelap sebelah",
])
def test_a_relative_who_had_the_treatment_is_the_patient(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "my gran has pneumonia and a fever but my lips are fine thanks",
    "my sister had botox once and it went wrong, my lips are fine though",
    "bapak aku sakit flu, aku sendiri bibir aman kak",
])
def test_a_relatives_own_illness_or_history_stays_a_third_party(text):
    assert level(text) in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "my throat feels like someone's squeezing it",
    "swallowing feels really difficult tonight",
    "my lips are swelling up really fast",
    "tenggorokan aku kayak diiket kencang kak",
    "nelen susah banget kak",
    "lidah aku bengkak cepet banget kak",
])
def test_airway_trouble_told_by_sensation_is_an_emergency(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "two months after lip filler my top lip went hard and hot and sore",
    "8 weeks since the booster and one cheek is firm, red and tender",
    "filler pipi 2 bulan lalu kak, pipi kanan sekarang keras, panas, nyeri",
    "the scabs from my peel smell a bit off and are crusty",
    "red patch was size of a 5p yesterday, this morning its more like a 50p, day 3",
    "merahnya kemarin segede koin, sekarang segede tutup botol kak, hari ke 4",
    "it was the size of a pea on day 1 and now it's like a golf ball, day 5",
])
def test_late_hardness_a_smell_or_growth_told_by_comparison_is_urgent(text):
    assert level(text) is URGENT


def test_hard_red_and_sore_on_the_first_day_is_expected():
    assert level("day 1 after filler, lip went hard and a bit red and sore") is ROUTINE


@pytest.mark.parametrize("text, expected", [
    ("9/10 would recommend, no side effects at all", OK),
    ("been out on the slopes all day so my cheeks are cold, colour looks normal", OK),
    ("bit blurry earlier but I'd just put my eye drops in, all clear now", OK),
    ("my eyes were blurry when I woke up but it went after a few blinks", OK),
    ("the aftercare sheet says call if skin goes white or blue, what counts as blue? mine is just a bit pink", ROUTINE),
    ("checked for fever: none", OK),
    ("kulit aku kering kaku kayak kertas abis peeling, pake pelembab apa kak?", ROUTINE),
    ("td ngaca pake kaca pembesar dagu keliatan belang, di luar ternyata biasa aja kak", OK),
    ("nope nothing to report", OK),
    ("all good, no bruising and no swelling", OK),
    ("gak ada apa2 kak, aman", OK),
    ("semuanya lancar kak", OK),
    ("bengkaknya kempes, memarnya ilang kak", OK),
])
def test_false_alarms_and_all_fine_replies_are_read_as_such(text, expected):
    assert level(text) is expected


@pytest.mark.parametrize("text", [
    "10/10 pain when I press, throbbing",
    "my face is cold and my lip looks white",
    "bibir dingin dan warnanya putih pucat kak",
])
def test_the_false_alarm_rules_keep_the_real_alarm(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "my vision is blurry but it was probably my makeup",
    "vision's gone misty, I reckon it was the concealer",
    "my vision is still blurry, I put drops in an hour ago",
    "mata kiri burem kak, kayaknya gara2 bedak",
])
def test_only_an_eye_cause_for_a_blur_that_has_gone_explains_a_vision_change(text):
    assert level(text) is EMERGENCY


def test_a_passed_blur_blamed_on_makeup_is_still_reported():
    assert level("vision went blurry for a bit, think it was my mascara, fine now") is URGENT


@pytest.mark.parametrize("text", [
    "ada garis merah dari benjolan naik ke ketiak, kayak dicoret pake spidol",
    "there's a red line going up my arm like someone drew it with a pen",
])
def test_a_simile_describes_and_does_not_explain(text):
    assert level(text) is URGENT


@pytest.mark.parametrize("text", [
    "kirain bibir aku biru ternyata lip tint baru, bengkak dikit aja, boleh kompres ga?",
    "bibir keliatan putih ternyata sisa bedak kak, skrg udah dibersihin. boleh pake lipbalm ga?",
])
def test_ternyata_explains_the_colour_even_when_a_question_follows(text):
    assert level(text) is ROUTINE


@pytest.mark.parametrize("text", [
    "it's like looking through frosted glass out of my right eye",
    "everything on my left is dark since the filler",
    "I've lost the outer part of my sight on the right",
    "I can't focus my left eye on anything",
    "mata kiri kayak ada bayangan hitam kak",
    "mata kanan gak bisa fokus kak",
    "muka sebelah kiri kaku kak gak bisa senyum",
    "my fingers won't do what I tell them",
    "can't keep water in my mouth on the left",
    "it's hard to get air in",
])
def test_the_next_paraphrase_of_a_lost_function_is_caught_too(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "the red area is twice the size it was yesterday",
    "redness has crept past the pen line the nurse drew",
    "merahnya udah dua kali lipat dari kemarin",
    "ada kerak kuning dan bau kak hari ke 5",
])
def test_spreading_redness_and_infected_crust_told_plainly_are_urgent(text):
    assert level(text) is URGENT


@pytest.mark.parametrize("text", [
    "the numbing cream made my lips feel heavy for an hour, all fine now",
    "I lost my aftercare leaflet, what do I avoid?",
    "pipi kiri agak keras dikit kak abis filler kemarin, normal ga?",
    "suami aku bilang bibirku bagus kak hehe",
    "I had to squint at the tiny print on the leaflet, eyes are fine",
])
def test_everyday_words_near_a_frame_part_raise_no_alarm(text):
    assert level(text) in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "mama bilang ngomongku aneh kak abis filler",
    "writing for my mother, she got filler this morning and now her words are slurred",
    "ibu saya td filler, skrg tangannya lemes sebelah",
])
def test_a_relative_quoted_or_reporting_does_not_hide_the_patients_own_sign(text):
    assert level(text) is EMERGENCY


def test_two_cues_over_the_same_words_give_the_same_answer_in_every_process():
    """ "for a minute" is both a brief-passing cue and a duration cue; which the matcher found first used to
    depend on set order (the hash seed), so the same reply could be ok in one worker and an emergency in
    another."""
    import os
    import subprocess
    import sys

    code = ("from aftercare.triage import triage;"
            "print(triage('my lens had folded, blurry for a minute, fine now').level.value)")
    answers = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout.strip()
               for seed in range(4)}
    assert answers == {"ok"}
