"""One-word answers to a check-in's closed red-flag question ("Any white skin, bad pain or blurred vision?
Reply YES or NO"), in English and Bahasa Indonesia as patients text them.

A reply is an answer only as a whole ("yes", "Ya kak", "1", "gak ada dok 🙏") or by its first word ("yes it
is grey", "nope all fine"); elsewhere in a sentence "ya" is a particle ("makasih ya") and "no" may negate a sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class Answer(StrEnum):
    YES = "yes"
    NO = "no"


_YES_WORDS = frozenset({
    "yes", "y", "ye", "yea", "yeah", "yeh", "yep", "yup", "yes please", "sure", "1",  # 1 = YES on the question
    "ya", "iya", "iy", "iye", "yoi", "betul", "benar", "bener", "ada", "iya ada", "ya ada",
})
_NO_WORDS = frozenset({
    "no", "n", "nope", "nah", "nop", "none", "nothing", "2",  # 2 = NO on the question
    "tidak", "tdk", "tak", "gak", "ga", "gk", "nggak", "ngga", "ngak", "enggak", "engga", "nda", "ndak", "belum",
    "blm", "tidak ada", "tdk ada", "gak ada", "ga ada", "gk ada", "nggak ada", "ngga ada", "enggak ada", "nda ada",
    "no none", "no nothing", "nothing at all", "none at all",
})
# Greetings and honorifics may stand before or after an answer ("kak iya", "no dok").
_ADDRESS = frozenset({
    "kak", "ka", "kk", "kakak", "dok", "dokter", "sus", "suster", "sis", "mbak", "mba", "bu", "ibu", "mas", "pak",
    "sir", "maam", "dear", "hi", "hello", "halo", "hai",
})
# Lead-ins before an answer ("sorry, actually yes", "eh iya"). Not "oh" or "aduh": "oh no" is dismay, not a NO.
_LEAD_INS = frozenset({
    "sorry", "soz", "actually", "um", "umm", "uh", "er", "well", "oops", "hmm", "ah", "so", "i", "think",
    "maaf", "sori", "eh", "kayaknya", "sepertinya",
})
_BEFORE = _ADDRESS | _LEAD_INS
# Thanks only after it: in "makasih ya" the "ya" is a particle, not a yes.
_AFTER = _ADDRESS | {"thanks", "thank", "you", "thx", "ty", "makasih", "terima", "kasih", "trims", "ok", "okay", "oke"}
_WORD = re.compile(r"[a-z0-9]+")
# "yesss", "nooo", "iyaaa": texting stretches the last letter.
_STRETCH = re.compile(r"(.)\1+$")


@dataclass(frozen=True)
class ReadAnswer:
    answer: Answer
    whole: bool  # True: the reply is nothing but the answer; False: it opens a longer message
    rest: str = ""  # what follows the answer ("a little", "all fine thanks"), to be read on its own


def read_answer(text: str) -> ReadAnswer | None:
    """The yes/no answer a reply gives, if it gives one as a whole or after a lead-in ("sorry, actually yes");
    else None."""
    matches = list(_WORD.finditer((text or "").lower()))
    words = [_STRETCH.sub(r"\1", m.group()) for m in matches]
    start = 0
    while start < len(words) and words[start] in _BEFORE:
        start += 1
    for size in (3, 2, 1):
        end = start + size
        answer = _lookup(" ".join(words[start:end])) if len(words) >= end else None
        if answer is not None:
            return ReadAnswer(answer, whole=all(w in _AFTER for w in words[end:]),
                              rest=text[matches[end - 1].end():].strip(" ,.!-"))
    return None


def _lookup(phrase: str) -> Answer | None:
    if phrase in _YES_WORDS:
        return Answer.YES
    if phrase in _NO_WORDS:
        return Answer.NO
    return None


# "Is that normal?", "wajar gak kak?": the one question a routine sign's written answer does answer.
_NORMALCY = re.compile(r"\b(normal\w*|usual|expected|ok|okay|oke|fine|biasa|wajar|gpp|gapapa|ga papa|aman)\b",
                       re.IGNORECASE)
_QUESTION = re.compile(r"[^.!?\n]*\?")


def asks_beyond_normal(text: str) -> bool:
    """Whether the reply asks something besides "is this normal?" ("can I swim?", "itu demam gak?"): only a
    person can answer that, so no automatic answer may stand in for one."""
    return any(not _NORMALCY.search(question) for question in _QUESTION.findall(text or ""))
