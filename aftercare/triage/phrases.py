"""The word-pattern language of the lexicons, compiled to regexes anchored at the start of a token.

A phrase is a list of space-separated token specs, matched against whole tokens of the folded reply:

    word      that word (compared folded: lower case, runs of a letter collapsed, so "swelling" = "sweling")
    word*     any word starting with "word"
    a|b|c     any of the alternatives (each may be word, word*, @class or #)
    @class    any word of a named class
    #         a number, in digits or words
    /regex/   one number token matching the regex (temperatures: /3[89][.,]\\d/)
    [spec]    the spec, or nothing
    ~  ~N     up to 3 (or N) ordinary words; a gap never crosses punctuation, a negation or a word like "but"

The first spec must be a required word, class or number: phrases are looked up by their first token.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from aftercare.triage.text import fold

_WORD = re.compile(r"^[a-z0-9][a-z0-9./]*\*?$")
_GAP = re.compile(r"^~(\d*)$")
_DEFAULT_GAP = 3


class PhraseError(ValueError):
    """A lexicon phrase that does not follow the pattern language."""


@dataclass(frozen=True, slots=True)
class CompiledPhrase:
    regex: re.Pattern[str]
    first_words: frozenset[str]
    first_prefixes: frozenset[str]
    starts_with_number: bool


@dataclass(slots=True)
class _FirstToken:
    words: set[str]
    prefixes: set[str]
    number: bool = False


class PhraseCompiler:
    def __init__(self, classes: Mapping[str, Sequence[str]], numbers: Mapping[str, int], gap_stops: Collection[str]):
        self._classes = {name: [self._word(word, f"class @{name}") for word in words] for name, words in classes.items()}
        self._number_words = sorted(numbers, key=len, reverse=True)
        stops = "|".join(re.escape(word) for word in sorted(gap_stops, key=len, reverse=True))
        # One gap word: not punctuation (the tokens ",", "." and "?"), not a stop word.
        self._gap_word = f"(?!(?:{stops}) )[^ ,.?][^ ]*" if stops else "[^ ,.?][^ ]*"

    def compile(self, phrase: str) -> CompiledPhrase:
        specs = phrase.split()
        if not specs:
            raise PhraseError("empty phrase")
        if _GAP.match(specs[0]) or specs[0].startswith("["):
            raise PhraseError(f"{phrase!r}: the first token must be required (not a gap or [optional])")
        first = _FirstToken(words=set(), prefixes=set())
        parts = [self._unit(spec, first if index == 0 else None) for index, spec in enumerate(specs)]
        if _GAP.match(specs[-1]):
            raise PhraseError(f"{phrase!r}: a phrase cannot end with a gap")
        return CompiledPhrase(regex=re.compile("".join(parts)), first_words=frozenset(first.words),
                              first_prefixes=frozenset(first.prefixes), starts_with_number=first.number)

    def _unit(self, spec: str, first: _FirstToken | None) -> str:
        gap = _GAP.match(spec)
        if gap:
            return f"(?:{self._gap_word} ){{0,{int(gap.group(1) or _DEFAULT_GAP)}}}?"
        if spec.startswith("[") and spec.endswith("]"):
            return f"(?:{self._alternatives(spec[1:-1], None)} )?"
        return f"{self._alternatives(spec, first)} "

    def _alternatives(self, spec: str, first: _FirstToken | None) -> str:
        if spec.startswith("/") and spec.endswith("/") and len(spec) > 2:
            if first is not None:
                first.number = True
            return f"(?:{spec[1:-1]})"
        pieces = []
        for alternative in spec.split("|"):
            pieces.extend(self._alternative(alternative, first))
        return "(?:" + "|".join(sorted(set(pieces), key=len, reverse=True)) + ")"

    def _alternative(self, alternative: str, first: _FirstToken | None) -> list[str]:
        if alternative == "#":
            if first is not None:
                first.number = True
                first.words.update(self._number_words)
            return [r"\d+", *map(re.escape, self._number_words)]
        if alternative.startswith("@"):
            name = alternative[1:]
            if name not in self._classes:
                raise PhraseError(f"unknown class @{name}")
            return [self._word_regex(word, first) for word in self._classes[name]]
        return [self._word_regex(self._word(alternative, "phrase"), first)]

    @staticmethod
    def _word(raw: str, where: str) -> str:
        word = fold(raw)
        if not _WORD.match(word):
            raise PhraseError(f"{where}: {raw!r} is not a word (letters, digits, '.', '/', optional trailing '*')")
        return word

    @staticmethod
    def _word_regex(word: str, first: _FirstToken | None) -> str:
        if word.endswith("*"):
            stem = word[:-1]
            if first is not None:
                first.prefixes.add(stem)
            return re.escape(stem) + "[^ ]*"
        if first is not None:
            first.words.add(word)
        return re.escape(word)
