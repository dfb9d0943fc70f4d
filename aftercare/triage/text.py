"""Turns a reply into folded word tokens with sentence and clause numbers, the unit every rule works on."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from itertools import accumulate, chain
from operator import itemgetter
from typing import NamedTuple

STOP_MARK = "!"
# Punctuation tokens kept in the stream: they bound sentences and clauses.
COMMA, STOP, QUESTION = ",", ".", "?"
PUNCTUATION = frozenset({COMMA, STOP, QUESTION})

_SHORTHANDS = (("w/o", " without "), ("w/", " with "), ("b/c", " because "), ("°", " c "), ("&", " and "))
_APOSTROPHE = re.compile(r"(?<=[a-z])['’‘`´](?=[a-z])")
# Texting stretches letters ("sooo", "sakiiit") and typos drop doubles ("sweling"), so every run of one
# letter is folded to a single letter, in the text and in the lexicons alike.
_RUNS = re.compile(r"([a-z])\1+")
# A word may carry Indonesian reduplication written with a 2: "bengkak2", "kebiru2an".
_TOKEN = re.compile(r"\d+(?:[.,/]\d+)?|[a-z]+(?:2[a-z]*)?|[.!;\n…]+|\?+|[,:()+—–]|\s-+\s")
_NOT_REDUPLICATED = frozenset({"day", "hari", "hr", "hrs", "jam", "week", "wek", "minggu", "min", "mins"})
_PUNCTUATION_OF = {"?": QUESTION, ".": STOP, "!": STOP, ";": STOP, "\n": STOP, "…": STOP}
_DASHES = frozenset("-–—")
_CHUNKS_LIMIT = 50_000


def fold(word: str) -> str:
    """The folded form lexicon words are compared in: lower case, no apostrophes, letter runs collapsed."""
    return _RUNS.sub(r"\1", _APOSTROPHE.sub("", word.lower()))


def _raw_tokens(raw: str) -> tuple[str, ...]:
    """The tokens of one raw match: "bengkak2nya" -> ("bengkak", "bengkak", "nya") (reduplication expanded,
    possessives "-nya" and "-ku" split off, letter runs collapsed); "!!!" -> ("."); "37.9" -> ("37.9",)."""
    first = raw[0]
    if "a" <= first <= "z":
        return tuple(token for part in _reduplicated(raw) for token in _folded_parts(part))
    if first.isdigit():
        return (raw,)
    return (_PUNCTUATION_OF.get(raw.strip()[:1] or first, COMMA),)


def _chunk_words(chunk: str) -> tuple[str, ...]:
    if _DASHES.issuperset(chunk):  # a dash standing alone between words: "fine - thanks"
        return (COMMA,)
    return tuple(token for raw in _TOKEN.findall(chunk) for token in _raw_tokens(raw))


def _reduplicated(raw: str) -> tuple[str, ...]:
    if "2" not in raw:
        return (raw,)
    stem, _, suffix = raw.partition("2")
    if len(stem) >= 3 and stem not in _NOT_REDUPLICATED:
        return stem, stem + suffix
    return tuple(part for part in (stem, "2", suffix) if part)


def _folded_parts(word: str) -> tuple[str, ...]:
    """ "bengkaknya" -> ("bengkak", "nya"), "bibirku" -> ("bibir", "ku"): one lexicon word covers every form.
    The suffix is split before letter runs are collapsed ("benjolan-nya" keeps its n), and after too
    ("bengkaknyaaa")."""
    stem, suffix = _possessive(word)
    if suffix:
        return _RUNS.sub(r"\1", stem), suffix
    stem, suffix = _possessive(_RUNS.sub(r"\1", word))
    return (stem, suffix) if suffix else (stem,)


def _possessive(word: str) -> tuple[str, str]:
    if len(word) >= 6:
        if word.endswith("nya"):
            return word[:-3], "nya"
        if word.endswith("ku") and not word.endswith("kuku"):
            return word[:-2], "ku"
    return word, ""


def _prepared(text: str) -> str:
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        for short, long in _SHORTHANDS:
            text = text.replace(short, long)
    elif "/" in text or "&" in text:
        for short, long in _SHORTHANDS:
            text = text.replace(short, long)
    if "'" in text or not text.isascii() or "`" in text:
        text = _APOSTROPHE.sub("", text)
    if "\n" in text:
        text = text.replace("\n", " . ")  # a line break ends a sentence
    return text


@dataclass(slots=True)
class Tokens:
    """Word and punctuation tokens; `joined` is every token followed by one space, for anchored matching."""

    words: list[str]
    joined: str
    starts: list[int]
    sentence: list[int]
    clause: list[int]
    present: set[str]  # every distinct word, for quick "does the reply say X anywhere" tests

    def __len__(self) -> int:
        return len(self.words)

    def index_at(self, offset: int) -> int:
        """The token starting at `offset` in `joined` (the length past the end)."""
        return bisect_left(self.starts, offset)

    def sentence_end(self, index: int) -> int:
        """Index just past the sentence that holds token `index`."""
        number, end = self.sentence[index], index
        while end < len(self.words) and self.sentence[end] == number:
            end += 1
        return end

    def ends_with_question(self, index: int) -> bool:
        """Whether the sentence holding token `index` is closed by a question mark."""
        end = self.sentence_end(index)
        return end > 0 and self.words[end - 1] == QUESTION


class _Chunk(NamedTuple):
    """One whitespace chunk of a reply ("pain,"), tokenized once: its words, its words as they stand in `joined`
    (each followed by one space, stop words marked) and the width each takes there."""

    words: tuple[str, ...]
    shown: str
    widths: tuple[int, ...]


class _ChunkCache(dict[str, _Chunk]):
    def __init__(self, make: Callable[[str], _Chunk]):
        super().__init__()
        self._make = make

    def __missing__(self, chunk: str) -> _Chunk:
        if len(self) >= _CHUNKS_LIMIT:
            self.clear()
        found = self[chunk] = self._make(chunk)
        return found


_words_of, _shown_of, _widths_of = itemgetter(0), itemgetter(1), itemgetter(2)


class Tokenizer:
    """Tokenizes replies for one lexicon: its clause-break words ("but", "tapi") and its stop words.

    Stop words ("not", "but", "tapi"...) are marked with a "!" in `joined`: lexicon gaps skip any word but
    those (see phrases.py), so "red but not spreading" is never read as "red ... spreading". Replies reuse a
    small vocabulary, so each whitespace chunk ("pain,") is tokenized once and remembered, with its part of `joined`.
    """

    def __init__(self, clause_breaks: Collection[str], stop_words: Collection[str] = (),
                 emoji_words: Mapping[str, str] | None = None):
        self.clause_breaks = frozenset(clause_breaks)
        self._emoji_words = dict(emoji_words or {})  # "🤒" -> " fever ": a reply may be only an emoji
        self._stops = frozenset(stop_words)
        self._boundaries = PUNCTUATION | self.clause_breaks
        self._chunks = _ChunkCache(self._chunk)

    def _chunk(self, chunk: str) -> _Chunk:
        words = _chunk_words(chunk)
        shown = [STOP_MARK + word if word in self._stops else word for word in words]
        return _Chunk(words, "".join(word + " " for word in shown), tuple(len(word) + 1 for word in shown))

    def tokenize(self, text: str) -> Tokens:
        if not text.isascii():
            for emoji, word in self._emoji_words.items():
                if emoji in text:
                    text = text.replace(emoji, word)
        chunks = list(map(self._chunks.__getitem__, _prepared(text).split()))
        words = list(chain.from_iterable(map(_words_of, chunks)))
        starts = list(accumulate(chain.from_iterable(map(_widths_of, chunks)), initial=0))
        starts.pop()
        present = set(words)
        sentence, clause = self._number(words, present)
        return Tokens(words=words, joined="".join(map(_shown_of, chunks)) if words else " ", starts=starts,
                      sentence=sentence, clause=clause, present=present)

    def _number(self, words: list[str], present: set[str]) -> tuple[list[int], list[int]]:
        """A stop or question mark ends a sentence; a comma or a word like "but" starts a new clause. The numbers
        are laid down a run at a time, between the few boundary tokens."""
        boundaries, breaks, length = self._boundaries, self.clause_breaks, len(words)
        if boundaries.isdisjoint(present):  # one clause: nothing to count (many short replies)
            return [0] * length, [0] * length
        sentence: list[int] = []
        clause: list[int] = []
        sentence_from = current_sentence = clause_from = current_clause = 0
        for index in [index for index, word in enumerate(words) if word in boundaries]:
            word = words[index]
            if word in breaks:  # the break word opens the new clause
                clause += [current_clause] * (index - clause_from)
                clause_from, current_clause = index, current_clause + 1
            if word in PUNCTUATION:  # the mark closes its clause (and a stop its sentence)
                clause += [current_clause] * (index + 1 - clause_from)
                clause_from, current_clause = index + 1, current_clause + 1
                if word != COMMA:
                    sentence += [current_sentence] * (index + 1 - sentence_from)
                    sentence_from, current_sentence = index + 1, current_sentence + 1
        clause += [current_clause] * (length - clause_from)
        sentence += [current_sentence] * (length - sentence_from)
        return sentence, clause


def tokenize(text: str, clause_breaks: Collection[str], stop_words: Collection[str] = ()) -> Tokens:
    """One-off tokenizing (tests, tools); triage uses the lexicon's cached Tokenizer."""
    return Tokenizer(clause_breaks, stop_words).tokenize(text)
