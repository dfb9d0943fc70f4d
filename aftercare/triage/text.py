"""Turns a reply into folded word tokens with sentence and clause numbers, the unit every rule works on."""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from itertools import accumulate, chain

STOP_MARK = "!"
# Punctuation tokens kept in the stream: they bound sentences and clauses.
COMMA, STOP, QUESTION = ",", ".", "?"
PUNCTUATION = frozenset({COMMA, STOP, QUESTION})

_SHORTHANDS = (("w/o", " without "), ("w/", " with "), ("b/c", " because "), ("°", " c "), ("&", " and "))
# An apostrophe between two letters. The mark comes first and the letter before it is checked behind it: a pattern
# opening with a look-behind is tried at every character, one opening with a character set is scanned for quickly.
_APOSTROPHE = re.compile(r"['’‘`´](?<=[a-z].)(?=[a-z])")
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


class _ChunkCache(dict[str, tuple[str, ...]]):
    """chunk -> its tokens, worked out on first sight (a lookup that misses calls __missing__ from C: no Python-level
    test per chunk)."""

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        if len(self) >= _CHUNKS_LIMIT:
            self.clear()
        found = self[chunk] = _chunk_words(chunk)
        return found


class Tokenizer:
    """Tokenizes replies for one lexicon: its clause-break words ("but", "tapi") and its stop words.

    Stop words ("not", "but", "tapi"...) are marked with a "!" in `joined`: lexicon gaps skip any word but
    those (see phrases.py), so "red but not spreading" is never read as "red ... spreading". Replies reuse a
    small vocabulary, so each whitespace chunk ("pain,") is tokenized once and remembered.
    """

    def __init__(self, clause_breaks: Collection[str], stop_words: Collection[str] = (),
                 emoji_words: Mapping[str, str] | None = None):
        self.clause_breaks = frozenset(clause_breaks)
        self._emoji_words = dict(emoji_words or {})  # "🤒" -> " fever ": a reply may be only an emoji
        self._stops = frozenset(stop_words)
        self._boundaries = PUNCTUATION | self.clause_breaks
        self._chunks = _ChunkCache()

    def tokenize(self, text: str) -> Tokens:
        stops = self._stops
        if not text.isascii():
            for emoji, word in self._emoji_words.items():
                if emoji in text:
                    text = text.replace(emoji, word)
        words = list(chain.from_iterable(map(self._chunks.__getitem__, _prepared(text).split())))
        shown = [STOP_MARK + word if word in stops else word for word in words]
        starts = list(accumulate([len(word) + 1 for word in shown], initial=0))
        starts.pop()
        present = set(words)
        sentence, clause = self._number(words, present)
        return Tokens(words=words, joined=" ".join(shown) + " ", starts=starts, sentence=sentence, clause=clause,
                      present=present)

    def _number(self, words: list[str], present: set[str]) -> tuple[list[int], list[int]]:
        """A stop or question mark ends a sentence; a comma or a word like "but" starts a new clause."""
        breaks = self.clause_breaks
        if self._boundaries.isdisjoint(present):  # one clause: nothing to count (many short replies)
            return [0] * len(words), [0] * len(words)
        sentence: list[int] = []
        clause: list[int] = []
        current_sentence = current_clause = 0
        for word in words:
            if word in breaks:
                current_clause += 1
            sentence.append(current_sentence)
            clause.append(current_clause)
            if word in PUNCTUATION:
                current_clause += 1
                if word != COMMA:
                    current_sentence += 1
        return sentence, clause


def tokenize(text: str, clause_breaks: Collection[str], stop_words: Collection[str] = ()) -> Tokens:
    """One-off tokenizing (tests, tools); triage uses the lexicon's cached Tokenizer."""
    return Tokenizer(clause_breaks, stop_words).tokenize(text)
