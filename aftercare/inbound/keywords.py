"""Carrier compliance keywords and clear free-text opt-outs (consent may be revoked "in any reasonable manner").

Single-word keywords are Twilio's defaults plus Indonesian. A STOP or START keyword repeated or wrapped in
politeness ("Stop please", "STOP. Thank you", "STOP STOP", "stop ya kak") is that keyword as a whole message.
Free-text phrases must be unmistakable requests to stop messages: "it won't stop bleeding", "should I stop my
retinol?" or "bengkaknya gak berhenti" are not opt-outs. Every word list lives in this module.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Keyword(StrEnum):
    STOP = "stop"
    START = "start"
    HELP = "help"


_SINGLE = {
    **dict.fromkeys(["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "BERHENTI"],
                    Keyword.STOP),
    **dict.fromkeys(["START", "UNSTOP", "MULAI"], Keyword.START),
    **dict.fromkeys(["HELP", "INFO", "BANTUAN"], Keyword.HELP),
}

# Words that only soften a keyword, in English and everyday Indonesian. Never a word that can carry meaning of
# its own beside "stop": "udah berhenti" is "it has stopped" (the bleeding), so "udah"/"sudah" are not here.
_POLITE = frozenset({
    "please", "pls", "plz", "plis", "pliss", "thanks", "thx", "ty", "tq", "now", "me", "just",
    "ya", "yaa", "yah", "kak", "ka", "kakak", "sis", "mbak", "mba", "min", "tolong", "mohon", "dong", "deh",
    "aja", "saja", "makasih", "makasi", "trims",
})
_POLITE_PHRASES = re.compile(r"\b(?:thank you|thank u|terima kasih|terimakasih|ma kasih)\b")
# A wrapped HELP stays a reply a person reads: "help me please" may be a plea, not a request for our number.
_WRAPPABLE = frozenset({Keyword.STOP, Keyword.START})

_ME = r"(?:me|us|this number|my (?:number|phone))"
_MESSAGES = r"(?:texts?|texting|sms(?:es)?|messages?|messaging|reminders?|notifications?|emails?)"
_TIDAK = r"(?:tidak|tdk|nggak|ngga|gak|ga|gk|enggak|engga)"
_KIRIM = r"(?:kirim|ngirim|sms|chat|wa|hubungi|ingetin|ingatkan)"
_PESAN = r"(?:sms\w*|pesan|chat|notif\w*|pengingat|reminder|wa|whatsapp)"
_FREE_TEXT_STOP = [
    rf"\bstop (?:all )?(?:the )?(?:sending|send|texting|text|messaging|message|contacting|emailing) ?(?:{_ME})?\b",
    rf"\bstop (?:all )?(?:the |these |your |ur )?{_MESSAGES}\b",
    rf"\b(?:do not|don'?t|dont|pls don'?t|please don'?t|never) (?:text|message|sms|contact|email) {_ME}\b",
    r"\b(?:unsubscribe|unsub|opt (?:me )?out|opt-out|take me off|remove me)\b",
    rf"\bno more {_MESSAGES}\b",
    rf"\b(?:i )?(?:don'?t|do not) want (?:any )?(?:more |these |your )?{_MESSAGES}\b",
    r"\bjangan (?:kirim|kirimi|kirimin|sms|chat|wa|hubungi|menghubungi)\w* (?:\w+ ){0,3}lagi\b",
    r"\bjangan (?:kirim|kirimi|kirimin|sms|chat|hubungi)\w* (?:saya|aku|sy|gw|gue)\b",
    r"\b(?:berhenti|stop|setop) (?:kirim|mengirim|ngirim|sms|pesan|chat)\w*\b",
    r"\b(?:tidak|nggak|ngga|gak|ga|enggak) (?:mau|ingin|perlu) (?:dapat|dapet|terima|menerima|di ?kirimi?) "
    r"(?:sms|pesan|chat|notif)\w*(?: lagi)?\b",
    r"\b(?:hapus|keluarkan) (?:nomor|nomer|no) (?:saya|aku|sy)\b",
    # "gak usah kirim sms lagi", "ga usah dikirimin lagi ya": no need to send (us) anything any more. Not a
    # question ("ga usah sms lagi ke dokter?" asks whether the patient must text again).
    rf"\b{_TIDAK} (?:usah|perlu) (?:di ?)?{_KIRIM}\w*(?: {_PESAN})? lagi\b(?![^.!]*\?)",
    rf"\b{_TIDAK} (?:usah|perlu) (?:di ?)?{_KIRIM}\w* {_PESAN}\b(?![^.!]*\?)",
]
_FREE_TEXT_RE = re.compile("|".join(_FREE_TEXT_STOP), re.IGNORECASE)
_NOT_WORDS = re.compile(r"[^\w']+", re.UNICODE)


def keyword(text: str) -> Keyword | None:
    """The compliance keyword a message is, if the whole message is one: a bare keyword ("STOP", "stop."), or
    STOP/START repeated or wrapped in politeness ("Please stop", "stop ya kak"). Case and punctuation ignored."""
    bare = _SINGLE.get(_NOT_WORDS.sub("", text or "").upper())
    return bare if bare is not None else _wrapped_keyword(text or "")


def _wrapped_keyword(text: str) -> Keyword | None:
    words = [w for w in re.findall(r"\w+", _POLITE_PHRASES.sub(" ", text.lower())) if w not in _POLITE]
    found = {_SINGLE.get(word.upper()) for word in words}
    if len(found) != 1:  # no words left, two different keywords, or a word that is none
        return None
    kw = found.pop()
    return kw if kw in _WRAPPABLE else None


# "YES" opts back in only for someone who opted out; from anyone else it is an answer to a check-in question.
OPT_IN_IF_OPTED_OUT = frozenset({"YES", "YA", "IYA"})


def is_conditional_opt_in(text: str) -> bool:
    return _NOT_WORDS.sub("", text or "").upper() in OPT_IN_IF_OPTED_OUT


def is_free_text_opt_out(text: str) -> bool:
    normalised = " ".join((text or "").lower().replace("\u2019", "'").split())
    return bool(_FREE_TEXT_RE.search(normalised))


def classify(text: str) -> tuple[Keyword | None, bool]:
    """(keyword, whole_message): a single keyword, or a free-text opt-out inside a longer message."""
    found = keyword(text)
    if found is not None:
        return found, True
    if is_free_text_opt_out(text):
        return Keyword.STOP, False
    return None, False
