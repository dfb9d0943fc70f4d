"""Carrier compliance keywords and clear free-text opt-outs (consent may be revoked "in any reasonable manner").

Single-word keywords are Twilio's defaults plus Indonesian. Free-text phrases must be unmistakable requests to
stop messages: "it won't stop bleeding" or "should I stop my retinol?" are not opt-outs.
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

_ME = r"(?:me|us|this number|my (?:number|phone))"
_MESSAGES = r"(?:texts?|texting|sms(?:es)?|messages?|messaging|reminders?|notifications?|emails?)"
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
]
_FREE_TEXT_RE = re.compile("|".join(_FREE_TEXT_STOP), re.IGNORECASE)
_NOT_WORDS = re.compile(r"[^\w']+", re.UNICODE)


def keyword(text: str) -> Keyword | None:
    """The compliance keyword a message is, if the whole message is one (case and spacing ignored)."""
    word = _NOT_WORDS.sub("", text or "").upper()
    return _SINGLE.get(word)


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
