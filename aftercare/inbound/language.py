"""Which language one reply is written in, so the answer goes back in it ("per message, not per profile").

py3langid (a maintained langid.py) restricted to the languages we answer in; a reply too short or too mixed to
tell (an emoji, "ok kak all good") returns None and the caller keeps the patient's own language.
"""

from __future__ import annotations

from functools import cache

from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

from aftercare.protocols.templates import LANGUAGES

# Below this normalised probability the reply is mixed or too short to tell.
_MIN_CONFIDENCE = 0.9


@cache
def _identifier() -> LanguageIdentifier:
    identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def message_language(text: str) -> str | None:
    """"en", "id" (one of LANGUAGES) when the text clearly is in it, else None."""
    if sum(ch.isalpha() for ch in text or "") < 3:
        return None
    language, probability = _identifier().classify(text)
    return language if probability >= _MIN_CONFIDENCE else None
