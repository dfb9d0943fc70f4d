"""The places a reply names a sign, and which of the matched sign phrases stand.

A sign phrase stands when the context it needs is in its sentence ("blurry" needs an eye or seeing), no
exception phrase covers it ("feeling blue"), and no longer phrase holds it ("swollen tongue" is one sign,
not swelling too).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from aftercare.triage.lexicon import Lexicon, SignInfo
from aftercare.triage.matcher import Match
from aftercare.triage.text import Tokens

Found = defaultdict[str, list[Match]]  # by entry kind; a kind with nothing found reads as an empty list


class Flag:
    """Bits set on a mention by the context rules (plain ints: enum arithmetic is slow, and this runs for
    every reply)."""

    ABSENT = 1  # "no fever"
    GONE = 2  # "not hot anymore", "went white for an hour, fine now"
    HYPOTHETICAL = 4  # "what if it gets pus?"
    THIRD_PARTY = 8  # "my friend had pus"
    EXPLAINED = 16  # "the white patch was my concealer", "small bruise, a bit blue"


DROPPED = Flag.HYPOTHETICAL | Flag.THIRD_PARTY | Flag.EXPLAINED
# A reply whose only signs are denied ("no fever"), explained away ("the white was my concealer") or gone
# ("bengkak kempes, memar ilang") is ok: a passed sign that still matters is reported before this is asked.
NOTHING_WRONG = frozenset(flags for flags in range(1, 32)
                          if not flags & ~(Flag.ABSENT | Flag.EXPLAINED | Flag.GONE))


@dataclass(slots=True, eq=False)
class Mention:
    """One place a sign is named in the reply."""

    sign: SignInfo
    start: int
    end: int
    flags: int = 0
    wide: bool = False  # found by a frame that reaches across the clause: it may span a cue ("eye drops made ... blurry")

    @property
    def present(self) -> bool:
        return not self.flags

    @property
    def passed(self) -> bool:
        return bool(self.flags & Flag.GONE) and not self.flags & DROPPED


def select_mentions(found: Found, tokens: Tokens, lexicon: Lexicon) -> list[Mention]:
    """The sign matches that stand, in reading order (the matcher scans tokens left to right)."""
    matches = found["sign"]
    if not matches:
        return []
    if found["except"] or any(m.entry.needs or m.entry.unless for m in matches):
        matches = [m for m in matches if _stands(m, found, tokens, lexicon)]
    if len(matches) > 1 and any(b.start < a.end for a, b in zip(matches, matches[1:], strict=False)):
        matches = [m for m in matches if not _held_by_longer(m, matches)]  # only overlapping phrases can hide
    signs = lexicon.signs
    return [Mention(signs[m.entry.key], m.start, m.end, 0, not m.entry.hides) for m in matches]


def _stands(match: Match, found: Found, tokens: Tokens, lexicon: Lexicon) -> bool:
    entry = match.entry
    if entry.needs and not _sentence_has(entry.needs, tokens.sentence[match.start], found, tokens, lexicon):
        return False
    if entry.unless and _sentence_has(entry.unless, tokens.sentence[match.start], found, tokens, lexicon):
        return False
    return not any(veto.entry.key == entry.key and veto.start <= match.start and match.end <= veto.end
                   for veto in found["except"])


def _sentence_has(context: str, sentence: int, found: Found, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "blurry" is a vision sign when the same sentence speaks of an eye or of seeing."""
    if any(c.entry.key == context and tokens.sentence[c.start] == sentence for c in found["context"]):
        return True
    words = lexicon.context_words.get(context, frozenset())
    return any(number == sentence and word in words
               for word, number in zip(tokens.words, tokens.sentence, strict=True))


def _held_by_longer(match: Match, matches: list[Match]) -> bool:
    """ "swollen tongue" is one sign, not swelling too; a longer phrase only hides signs no more serious
    than its own, so "white stuff" (discharge) cannot hide an emergency unless the lexicon says so."""
    rank, length = match.entry.rank, match.end - match.start
    for other in matches:
        if other is match or not other.entry.hides or not (other.start <= match.start and match.end <= other.end):
            continue
        other_length = other.end - other.start
        if other_length > length and other.entry.rank >= rank:
            return True
        if other_length == length and other.entry.key == match.entry.key and id(other) < id(match):
            return True  # the same phrase found twice (listed under two of its required words)
    return False
