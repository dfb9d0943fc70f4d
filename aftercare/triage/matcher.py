"""Finds every lexicon phrase in a tokenized reply, trying only the phrases that can start at each token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aftercare.triage.phrases import CompiledPhrase
from aftercare.triage.text import PUNCTUATION, Tokens

_CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One phrase of the lexicon and what finding it means."""

    kind: str  # "sign", "except", "trigger", "context", "timeframe", "positive", "question", ...
    key: str  # the sign id, trigger kind or context name
    phrase: CompiledPhrase
    value: int = 0  # timeframes: days per number found (scale) or the day itself (fixed)
    needs: str = ""  # sign phrases that count only when the sentence has this context ("blurry" needs an eye)


@dataclass(frozen=True, slots=True)
class Match:
    entry: Entry
    start: int  # first token
    end: int  # one past the last token


class PhraseMatcher:
    """Indexes phrases by their possible first word so a reply costs a few dict lookups per token.

    One big alternation regex would be tried at every character of the reply; this tries a handful of
    anchored regexes per token instead, which keeps triage near a few tens of microseconds.
    """

    def __init__(self, entries: Iterable[Entry]):
        self._by_word: dict[str, list[Entry]] = {}
        self._by_prefix: dict[str, list[Entry]] = {}
        self._by_number: list[Entry] = []
        for entry in entries:
            phrase = entry.phrase
            for word in phrase.first_words:
                self._by_word.setdefault(word, []).append(entry)
            for prefix in phrase.first_prefixes:
                self._by_prefix.setdefault(prefix, []).append(entry)
            if phrase.starts_with_number:
                self._by_number.append(entry)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._cache: dict[str, tuple[Entry, ...]] = {}

    def candidates(self, word: str) -> tuple[Entry, ...]:
        found = self._cache.get(word)
        if found is None:
            found = self._lookup(word)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = found
        return found

    def _lookup(self, word: str) -> tuple[Entry, ...]:
        found: dict[int, Entry] = {}
        for entry in self._by_word.get(word, ()):
            found[id(entry)] = entry
        for length in self._prefix_lengths:
            if length > len(word):
                break
            for entry in self._by_prefix.get(word[:length], ()):
                found[id(entry)] = entry
        if word[0].isdigit():
            for entry in self._by_number:
                found[id(entry)] = entry
        return tuple(found.values())

    def find(self, tokens: Tokens) -> list[Match]:
        matches: list[Match] = []
        joined, starts = tokens.joined, tokens.starts
        index_at = {offset: index for index, offset in enumerate(starts)}
        size = len(starts)
        for index, word in enumerate(tokens.words):
            if word in PUNCTUATION:
                continue
            for entry in self.candidates(word):
                found = entry.phrase.regex.match(joined, starts[index])
                if found is not None:
                    matches.append(Match(entry, index, index_at.get(found.end(), size)))
        return matches
