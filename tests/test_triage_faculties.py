"""The emergency faculties told in words and word orders no lexicon phrase spells out: a part or faculty and a loss
word anywhere in the sentence (faculties.yaml), with texting forms in both languages; the same sentences negated,
told of someone else, or feared stay quiet. Every sentence here is new wording, written for this file."""

from __future__ import annotations

import pytest

from aftercare.triage import TriageLevel, triage

EMERGENCY, URGENT, ROUTINE, OK = (TriageLevel.EMERGENCY, TriageLevel.URGENT, TriageLevel.ROUTINE, TriageLevel.OK)
NOT_ESCALATED = (ROUTINE, OK)


def level(text: str) -> TriageLevel:
    return triage(text).level


@pytest.mark.parametrize("text", [
    # vision, either order, across the sentence
    "since the tear trough filler there's a haze sitting over my right eye that blinking won't shift",
    "things look smeary out of my left eye since this morning",
    "my sight on the left went a sort of grey an hour after the nose filler",
    "seeing two of everything since the temple filler",
    "the vision in my right eye, ever since I got home, has a foggy patch",
    "pandanganku jadi gelap sebelah sejak td sore kak",
    "kok liatnya berbayang ya kak abis filler hidung",
    "mata kanan kyk ketutup asep, burem bgt",
    "pngliatan kiri kyk ada asap abis filler",
    "udh mendingan kok kak bengkaknya, cm penglihatan kanan agak samar2 dr tadi",
    # eyelid
    "my left upper lid is sitting lower than the right since the filler",
    "can't get my right eye fully open since the filler between my brows",
    "mata kiri susah melek sejak td siang",
    "kelopak mata sebelah kanan kyk melorot kak",
    # speech
    "I'm stumbling over my words and it's getting worse, filler was at 2",
    "ngomongku kok jd pelo gini kak",
    "kata-katanya gak jelas pas ngomong, baru abis filler",
    "her answers don't make sense since she got back from the clinic",
    # arm, hand, grip
    "couldn't hold my coffee this morning, my right hand just has no strength",
    "tangan kiri kok gak bisa dipake megang sendok",
    "lengan kanan lemes bgt gak kuat ngangkat tas",
    "I keep dropping my keys, first the pen then my phone",
    "hp ku jatuh trs dr tangan kanan kak",
    # one side of the face
    "mulutku mencong ke kanan pas aku senyum",
    "one side of my grin won't lift since lunchtime",
    "the corner of my mouth on the left has dropped down",
])
def test_a_faculty_lost_in_new_words_is_an_emergency(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    # a relative or friend writing: the person they write about is the patient
    "my flatmate had her lips done at your clinic and now she can't lift her left arm properly",
    "I'm with my sister now, she had filler this morning and her speech sounds all tangled",
    "ini adiknya kak Sari, kakak aku abis filler td pagi kok ngomongnya belepotan",
    "saya suaminya bu Dewi, istri saya td disuntik, skrg tangan kanannya lemes",
])
def test_a_relative_or_friend_reporting_the_patients_signs_is_an_emergency(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "my vision is totally fine, no blur at all, just a bruise near the eye",
    "no droopy eyelid, I checked in the mirror, both lids open fine",
    "my speech is fine, no slurring, just a fat lip",
    "arms and hands are fine, no weakness, grip normal",
    "mata aman kak, gak burem sama sekali",
    "tangan gak lemes kok kak, aman",
    "ngomong lancar kak, gak pelo",
    "muka gak mencong kok, cm bengkak dikit",
])
def test_the_same_faculties_denied_stay_quiet(text):
    assert level(text) in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "my grandad had a stroke last year, his speech was slurred for weeks, anyway my lips are fine",
    "if my vision goes blurry what should I do?",
    "kalau pandangan jadi kabur harus gimana kak?",
    "the leaflet says droopy eyelids can happen with botox, is that right for filler too?",
    "temen aku dulu tangannya lemes abis operasi, aku sendiri aman kak",
])
def test_faculties_feared_or_someone_elses_are_not_emergencies(text):
    assert level(text) is not EMERGENCY


@pytest.mark.parametrize("text", [
    "the lip looks a bit dark and my vision is ok",
    "the bruise near my eye is dark purple, eyesight fine",
    "my words were all jumbled at the consultation because I was so nervous, totally fine now",
    "ngomongku td sempet belibet pas konsul soalnya grogi, skrg biasa aja",
])
def test_a_faculty_word_near_an_unrelated_sign_or_an_explained_past_slip_is_no_emergency(text):
    assert level(text) is not EMERGENCY


@pytest.mark.parametrize("text, expected", [
    # capillary refill told as a press test with seconds
    ("pushed on the dusky bit like you showed me and it took 5 seconds before it went pink", EMERGENCY),
    ("aku tekan bagian dagu, 4 detik baru balik merah kak", EMERGENCY),
    ("pressed my lip and it went white then came straight back pink, is that normal?", ROUTINE),
    # passed blanching is a clinician's job, not an ambulance
    ("my chin had gone white as chalk for about twenty minutes after I got home, it's pink again now", URGENT),
    # infection told as a lump that keeps refilling, a redness creeping on after day 3
    ("there's a spot on my cheek that fills up and bursts again every few days, had meso 5 weeks ago", URGENT),
    ("bekas meso di perut ada benjolan yg pecah trs ngisi lagi kak, udh sebulan", URGENT),
    ("the redness had nearly gone but now it's creeping down towards my jaw, peel was 6 days ago", URGENT),
    # hives with breathing fine are urgent, a fever with a throbbing hot swelling is an infection
    ("big itchy welts have come up all over my back and legs since the booster, breathing is fine", URGENT),
    ("I've got a temperature of 38.6 and the filler spot is hot, red and throbbing", URGENT),
    ("demam 38,7 kak, bekas filler merah panas cenut2", URGENT),
])
def test_refill_infection_and_allergy_in_new_words(text, expected):
    assert level(text) is expected


@pytest.mark.parametrize("text", [
    "the lid of the cream won't open lol, lips are lovely",
    "liat foto kemarin kok burem ya hasilnya, minta kirim ulang kak",
    "muka aku agak miring bengkaknya sebelah kiri",
    "the swelling made my smile a bit crooked but it's settling",
    "my arm is heavy from carrying shopping all day, face is fine",
    "dropped a glass of wine on the carpet lol, filler fine",
    "my vision is blurry without my glasses as always, face fine",
    "I see double chin is improving lol",
    "my eye makeup smudged a bit but the filler looks great",
    "suara aku serak krn pilek kak",
    "my mum's hand is weak from arthritis, she wants filler too",
    "jawaban kakak kurang jelas, boleh diulang?",
    "hp aku jatuh ke kolam kak wkwk",
])
def test_faculty_words_in_other_senses_are_no_emergency(text):
    assert level(text) is not EMERGENCY


@pytest.mark.parametrize("text, expected", [
    # colour, refill and airway in texting forms
    ("i pushed on it and the colour takes ages to return", EMERGENCY),
    ("dipencet putihnya lama ilangnya kak", EMERGENCY),
    ("bbr aku pucet bgt kak", EMERGENCY),
    ("tenggorokan kyk ada yg nyumbat kak", EMERGENCY),
    ("gabisa napas kak abis disuntik", EMERGENCY),
    ("kak tgn kiri gabisa diangkat dr td", EMERGENCY),
    # a sign buried after a reassuring update
    ("loving the result! one weird thing tho, the left side of my face feels heavy and my smile droops", EMERGENCY),
    ("overall healing really well, only thing is since this morning the letters on my screen look fuzzy", EMERGENCY),
    ("semua oke kak, cuma kok aku ngomong agak pelo ya", EMERGENCY),
    # a relative writing, told through "her filler" or "ini temennya"
    ("my mum's face has dropped on one side since her filler this morning, what do we do", EMERGENCY),
    ("ini temennya kak Lia, dia td abis filler trs skrg ngomongnya gak jelas", EMERGENCY),
    ("mama aku td disuntik filler, skrg matanya gak bisa melek sebelah", EMERGENCY),
    # someone else's faculty, a feared one, or every faculty denied
    ("my nan's eyesight is going, she wants to know if she can have filler", ROUTINE),
    ("ibuku dulu kena stroke, mulutnya mencong, aku takut tapi aku baik2 aja", ROUTINE),
    ("gak ada pandangan kabur, gak ada kelopak turun, cuma memar", ROUTINE),
    ("vision's crystal clear, speech normal, arms strong, just swollen lips", ROUTINE),
])
def test_texting_forms_buried_signs_and_relatives(text, expected):
    assert level(text) is expected


@pytest.mark.parametrize("text", [
    "kata orang lain bengkak segini normal kak",
    "pandangan aku sih hasilnya kurang natural",
    "swelling on my lower lid is going down",
    "heavy eye makeup on my lids today, filler looks great",
    "kelopak mata bawah bengkaknya udah turun kak",
    "hp aku jatuh lagi kak, layarnya retak wkwk",
    "mulut sebelah kiri bengkak dikit kak",
    "used a facial mist near my eyes and it stung a bit",
    "my vision check is in two weeks, face fine",
    "sorry my texts are jumbled, I'm typing fast! swelling is fine",
])
def test_a_wide_frame_does_not_reach_a_word_in_another_sense(text):
    assert level(text) is not EMERGENCY


@pytest.mark.parametrize("text", [
    "eye drops made my vision blurry for a minute then it cleared",
    "mata buram sebentar abis tetes mata, skrg udah jelas",
])
def test_a_cue_inside_a_wide_frame_still_explains_or_ends_the_sign(text):
    assert level(text) in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "is it normal that my vision is a bit blurry in the left eye?",
    "is it ok if my arm feels weak?",
    "apa normal kak kalo mata kiri burem abis filler?",
    "wajar gak sih kak kalo tangan kiri lemes?",
    "kak td pas lg makan siang sama temen2 kantor tiba2 pandangan aku burem sebelah",
    "the thing is that whenever I try to lift my cup my right arm gives way",
    "mata kiri gak bisa liat kak",
    "ga bs liat apa2 dr mata kanan",
    "hi!! quick q - vision kinda blurry + lip white?? filler 1hr ago",
])
def test_a_sign_asked_about_or_told_beside_company_is_still_the_patients(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text", [
    "like looking through a dirty windscreen out of my right eye",
    "everything's out of focus on the left side",
    "she's not making sense since the filler, my wife I mean",
    "he can't get his words out, had filler today at your place",
    "feels like someone's sitting on my chest",
    "the colour of my nose tip is like candle wax",
    "the pain is off the charts",
    "sakitnya gak ketulungan kak",
    "hidung ujungnya item kak",
    "I can't read my phone, my eyes won't settle on the words",
])
def test_everyday_comparisons_and_idioms_for_emergency_signs(text):
    assert level(text) is EMERGENCY


@pytest.mark.parametrize("text, expected", [
    ("went pale when I saw the bill, lips perfect", OK),
    ("harganya bikin aku pucet wkwk, hasilnya cakep", OK),
    ("my lip went pale and I'm paying the bill", EMERGENCY),
    ("my face's drooping on one side", EMERGENCY),
])
def test_going_pale_at_a_bill_is_an_idiom_but_a_pale_lip_beside_one_is_not(text, expected):
    assert level(text) is expected


@pytest.mark.parametrize("text", [
    "liat hp jd ga fokus kak, mata kiri",
    "my sight is off in one eye",
    "my eyelids look uneven, the left one is much lower and won't lift",
    "arm feels like jelly and wont do what i tell it",
    "fingers on my right hand won't do up my buttons",
    "muka kiri kaku gak bisa digerakin",
    "kok senyumku cuma naik sebelah ya kak",
    "ngomong susah kak lidah kyk berat",
    "mulut aku kyk ketarik ke kanan",
    "my mouth is pulling to one side",
])
def test_more_words_for_a_lost_faculty(text):
    assert level(text) is EMERGENCY


def test_off_folded_to_of_is_no_loss_word():
    # "off" and "of" fold alike: "no sign of blurry vision" must stay a denial
    assert level("no sign of blurry vision") in NOT_ESCALATED
    assert level("my vision is one of the things I worry about") is not EMERGENCY


# --- who a reply speaks of, how sure it is, and what it cannot place (relatives and friends reporting, uncertainty,
# a routine sign told as severe, an unplaced high-risk faculty, idioms and harmless causes) ---
@pytest.mark.parametrize("text", [
    "my husband's top lip has turned a greyish white",
    "my partner says her sight has gone all blurry",
    "my sister can't lift her eyelid properly",
    "my friend's chin looks mottled and purple",
    "I think my wife's nose tip is going dusky",
    "suami aku bibirnya kok jadi putih pucat",
    "adik saya matanya burem sebelah",
    "ini istrinya, bibirnya kebiruan",
    "temen aku ujung hidungnya jadi biru keunguan",
])
def test_a_relative_or_friend_named_alone_is_the_patient(text):
    assert triage(text).level is EMERGENCY


@pytest.mark.parametrize("text", [
    "my daughter has a temperature so I'm shattered, but my cheeks look great",
    "grandpa had a stroke a decade ago, I'm doing fine after the filler",
    "my boyfriend's eyesight is terrible so he can't tell I had anything done, my lips are lovely",
    "my nan's hand is weak these days, she wants filler too",
    "anak saya lagi demam jadi aku kurang tidur, tapi bibirku aman",
    "bapak aku dulu pernah stroke, aku sendiri aman kak",
])
def test_a_relatives_own_illness_beside_the_patients_own_word_is_not_escalated(text):
    assert triage(text).level in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "honestly not really sure",
    "unsure tbh",
    "no idea to be honest",
    "maybe??",
    "hard to say",
    "gatauu kak",
    "ntahlah kak",
    "kurang yakin sih",
    "belum tau kak",
])
def test_uncertainty_is_unplaced_never_ok(text):
    result = triage(text)
    assert (result.level, result.basis) == (ROUTINE, "unplaced")


@pytest.mark.parametrize("text", [
    "the injection spots sting like crazy",
    "my lips are itching terribly",
    "the swelling is awful",
    "burning so badly round the needle marks",
    "gatelnya nyiksa banget kak",
    "perihnya parah bgt",
    "bengkaknya gila kak",
])
def test_a_routine_sign_told_as_severe_is_never_answered_as_the_mild_sign(text):
    result = triage(text)
    assert result.level is not OK
    assert not (result.level is ROUTINE and result.basis == "signs")


@pytest.mark.parametrize("text", [
    "bengkak dikit bgt kak",
    "just a tiny bit itchy, thanks a lot",
])
def test_a_mild_sign_told_as_very_small_is_still_the_mild_sign(text):
    result = triage(text)
    assert (result.level, result.basis) == (ROUTINE, "signs")


@pytest.mark.parametrize("text", [
    "a bit bruised on the cheek. my eye though, it's gone a bit strange",
    "small bruise, and my voice is off somehow",
    "slightly swollen lip, the colour is not right either",
    "bit tender. my breathing feels odd",
    "tiny bruise, my eyelid is just not right",
    "small bruise and my eye is not ok",
    "memar dikit kak, tapi mataku rasanya aneh",
    "bengkak dikit, suaraku agak lain",
])
def test_a_high_risk_faculty_the_lexicon_cannot_place_is_read_by_a_person(text):
    result = triage(text)
    assert result.level is not OK
    assert not (result.level is ROUTINE and result.basis == "signs")


@pytest.mark.parametrize("text", [
    "a bit bruised, eyes totally fine",
    "slight swelling, no problems with my vision",
    "dark circles under my eyes as usual, lip a touch swollen",
    "bengkak dikit, mata aman kok",
])
def test_a_faculty_denied_praised_or_only_a_place_is_no_reason_to_hold(text):
    assert triage(text).basis == "signs"


@pytest.mark.parametrize("text", [
    "you lot are miracle workers, I look years younger",
    "I almost choked on my tea when I saw how good it looks, no lumps",
    "aku ampe ga bisa napas saking bahagianya liat hasilnya",
    "sae pisan hasilna, hatur nuhun kak",
    "my skin is pale because I've had no sleep with the baby, the filler looks great",
    "muka aku pucat krn lembur semalem, filler aman",
    "habis makan sambel bibir kerasa panas, selebihnya aman",
    "pipi merah krn malu dipuji temen kantor, aman kok",
    "was nervous I'd get the grey skin the nurse talked about, but no, nothing at all",
    "scared I'd end up with white blotches like my cousin, but nope, all clear",
    "wajahku kliatan pucat soalnya blm pake bedak, filler aman",
    "pipiku merah tapi karena ketawa terus sama temen, aman kak",
])
def test_idioms_and_harmless_causes_are_no_alarm(text):
    assert triage(text).level in NOT_ESCALATED


@pytest.mark.parametrize("text", [
    "my eye aches deep down behind it since the cheek filler",
    "the pain is only in the left eye, like a pressure",
    "mata kanan ga bisa digerakin ke samping kak abis filler",
    "mataku pas liat tulisan jauh jadi berbayang",
])
def test_eye_pain_and_an_eye_that_wont_move_are_emergencies(text):
    assert triage(text).level is EMERGENCY


@pytest.mark.parametrize("text, expected", [
    ("bekas suntiknya keluar cairan kayak santan", URGENT),
    ("the jab site is leaking stuff like custard", URGENT),
    ("my chin went dusky for a while and then came back on its own", URGENT),
    ("ujung hidung sempet putih bentar trus balik normal sendiri", URGENT),
])
def test_pus_told_by_what_leaks_and_a_colour_that_came_and_went(text, expected):
    assert triage(text).level is expected


@pytest.mark.parametrize("text", [
    "a spot beside the filler has gone the colour of cold semolina",
    "there's a patch by my lip the shade of oatmeal",
])
def test_a_pale_colour_told_by_a_pale_food_is_blanching(text):
    assert triage(text).level is EMERGENCY
