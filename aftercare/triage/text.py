"""Turns a reply into folded word tokens with sentence and clause numbers, the unit every rule works on."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

STOP_MARK = "!"
# Punctuation tokens kept in the stream: they bound sentences and clauses.
COMMA, STOP, QUESTION = ",", ".", "?"
PUNCTUATION = frozenset({COMMA, STOP, QUESTION})

_SHORTHANDS = (("w/o", " without "), ("w/", " with "), ("b/c", " because "), ("°", " c "), ("&", " and "))
_APOSTROPHE = re.compile(r"(?<=[a-z])['’‘`´](?=[a-z])")
# Texting stretches letters ("sooo", "sakiiit") and typos drop doubles ("sweling"), so every run of one
# letter is folded to a single letter, in the text and in the lexicons alike.
_RUNS = re.compile(r"([a-z])\1+")
# Indonesian reduplication written with a 2: "bengkak2" = "bengkak-bengkak", "kebiru2an" = "kebiru-biruan".
_REDUPLICATION = re.compile(r"\b([a-z]{3,})2([a-z]*)\b")
_NOT_REDUPLICATED = frozenset({"day", "hari", "hr", "hrs", "jam", "week", "wek", "minggu", "min", "mins", "ke"})
# The possessive "-nya" ("bengkaknya", "sakitnya") is split off so one lexicon word covers both forms.
_NYA = re.compile(r"\b([a-z]{3,})nya\b")
_TOKEN = re.compile(r"\d+(?:[.,/]\d+)?|[a-z]+|[.!;\n…]+|\?+|[,:()+—–]|\s-+\s")


def fold(word: str) -> str:
    """The folded form lexicon words are compared in: lower case, no apostrophes, letter runs collapsed."""
    return _RUNS.sub(r"\1", _APOSTROPHE.sub("", word.lower()))


def _reduplicate(match: re.Match[str]) -> str:
    stem, suffix = match.group(1), match.group(2)
    if stem in _NOT_REDUPLICATED:
        return f"{stem} 2{suffix}"
    return f"{stem} {stem}{suffix}"


def normalize(text: str) -> str:
    text = text.lower()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
    for short, long in _SHORTHANDS:
        if short in text:
            text = text.replace(short, long)
    text = _RUNS.sub(r"\1", _APOSTROPHE.sub("", text))
    if "2" in text:
        text = _REDUPLICATION.sub(_reduplicate, text)
    if "nya" in text:
        text = _NYA.sub(r"\1 nya", text)
    return text


def _token_of(raw: str) -> str:
    first = raw[0]
    if first.isalnum():
        return raw
    if first == "?":
        return QUESTION
    if first in ".!;\n…":
        return STOP
    return COMMA


@dataclass(slots=True)
class Tokens:
    """Word and punctuation tokens; `joined` is every token followed by one space, for anchored matching."""

    words: list[str]
    joined: str
    starts: list[int]
    sentence: list[int]
    clause: list[int]

    def __len__(self) -> int:
        return len(self.words)

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


def tokenize(text: str, clause_breaks: Collection[str], stop_words: Collection[str] = ()) -> Tokens:
    """`stop_words` ("not", "but", "tapi"...) are marked with a "!" in `joined`: lexicon gaps skip any word
    but those (see phrases.py), so "red but not spreading" is never read as "red ... spreading"."""
    words = [raw if raw[0].isalnum() else _token_of(raw.strip() or raw) for raw in _TOKEN.findall(normalize(text))]
    shown = [STOP_MARK + word if word in stop_words else word for word in words]
    starts, offset = [], 0
    for word in shown:
        starts.append(offset)
        offset += len(word) + 1
    sentence, clause = _number_sentences_and_clauses(words, clause_breaks)
    return Tokens(words=words, joined=" ".join(shown) + " ", starts=starts, sentence=sentence, clause=clause)


def _number_sentences_and_clauses(words: list[str], clause_breaks: Collection[str]) -> tuple[list[int], list[int]]:
    """A stop or question mark ends a sentence; a comma or a word like "but" starts a new clause."""
    sentence, clause = [0] * len(words), [0] * len(words)
    current_sentence = current_clause = 0
    for index, word in enumerate(words):
        if word in clause_breaks:
            current_clause += 1
        sentence[index], clause[index] = current_sentence, current_clause
        if word == STOP or word == QUESTION:
            current_sentence += 1
            current_clause += 1
        elif word == COMMA:
            current_clause += 1
    return sentence, clause
