"""Finds every lexicon phrase in a tokenized reply, trying only the phrases that can start at each token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

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


class Match(NamedTuple):
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
        for entry in dict.fromkeys(entries):  # both languages may list the same phrase
            phrase = entry.phrase
            for word in phrase.first_words:
                self._by_word.setdefault(word, []).append(entry)
            for prefix in phrase.first_prefixes:
                self._by_prefix.setdefault(prefix, []).append(entry)
            if phrase.starts_with_number:
                self._by_number.append(entry)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._cache: dict[str, tuple[tuple[Entry, ...], tuple[Entry, ...]]] = {}

    def candidates(self, word: str) -> tuple[Entry, ...]:
        singles, others = self._split_candidates(word)
        return singles + others

    def _split_candidates(self, word: str) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
        """(phrases that are this one word: already matched, phrases that need their regex tried)."""
        found = self._cache.get(word)
        if found is None:
            entries = self._lookup(word)
            found = (tuple(e for e in entries if e.phrase.single_word),
                     tuple(e for e in entries if not e.phrase.single_word))
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
        present = set(tokens.words)
        index_at: dict[int, int] | None = None
        size = len(starts)
        for index, word in enumerate(tokens.words):
            if word in PUNCTUATION:
                continue
            singles, others = self._split_candidates(word)
            for entry in singles:
                matches.append(Match(entry, index, index + 1))
            for entry in others:
                phrase = entry.phrase
                if phrase.required and (phrase.required.isdisjoint(present)
                                        or phrase.also_required and phrase.also_required.isdisjoint(present)):
                    continue
                found = phrase.regex.match(joined, starts[index])
                if found is not None:
                    if index_at is None:
                        index_at = {offset: position for position, offset in enumerate(starts)}
                    matches.append(Match(entry, index, index_at.get(found.end(), size)))
        return matches
