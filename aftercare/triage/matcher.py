"""Finds every lexicon phrase in a tokenized reply, trying only the phrases that can start at each token."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from aftercare.triage.phrases import CompiledPhrase
from aftercare.triage.text import PUNCTUATION, Tokens

_CACHE_LIMIT = 50_000


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity: cheap in the hot loop
class Entry:
    """One phrase of the lexicon and what finding it means."""

    kind: str  # "sign", "except", "trigger", "context", "timeframe", "positive", "question", ...
    key: str  # the sign id, trigger kind or context name
    phrase: CompiledPhrase
    value: int = 0  # timeframes: days per number found (scale) or the day itself (fixed)
    needs: str = ""  # sign phrases that count only when the sentence has this context ("blurry" needs an eye)
    rank: int = 0  # signs: the rank of the sign's usual level, so a longer phrase can hide a lesser one


class Match(NamedTuple):
    entry: Entry
    start: int  # first token
    end: int  # one past the last token


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The phrases that may start at one word, sorted by how cheaply they can be ruled out."""

    singles: tuple[Entry, ...]  # the phrase is this one word: found in the index means matched
    always: tuple[Entry, ...]  # no plain required word to test: try the regex
    keys: frozenset[str]  # required words of the remaining phrases
    by_key: dict[str, tuple[Entry, ...]]  # required word -> phrases that need it
    none: bool = False  # no phrase starts with this word (most words)


class PhraseMatcher:
    """Indexes phrases by their possible first word so a reply costs a few dict lookups per token.

    One big alternation regex would be tried at every character of the reply; this tries a handful of
    anchored regexes per token instead, and only those whose required words all occur in the reply.
    """

    def __init__(self, entries: Iterable[Entry]):
        self._by_word: dict[str, list[Entry]] = {}
        self._by_prefix: dict[str, list[Entry]] = {}
        self._by_number: list[Entry] = []
        unique = {(e.kind, e.key, e.phrase.regex.pattern, e.value, e.needs): e for e in entries}
        for entry in unique.values():  # both languages may list the same phrase
            phrase = entry.phrase
            for word in phrase.first_words:
                self._by_word.setdefault(word, []).append(entry)
            for prefix in phrase.first_prefixes:
                self._by_prefix.setdefault(prefix, []).append(entry)
            if phrase.starts_with_number:
                self._by_number.append(entry)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._cache: dict[str, _Candidates] = {}
        self.kinds = tuple(sorted({entry.kind for entry in unique.values()}))

    def candidates(self, word: str) -> tuple[Entry, ...]:
        """Every phrase that may start at `word` (for tests and tools)."""
        return tuple(self._lookup(word))

    def _candidates(self, word: str) -> _Candidates:
        found = self._cache.get(word)
        if found is None:
            found = self._sorted(self._lookup(word))
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = found
        return found

    @staticmethod
    def _sorted(entries: list[Entry]) -> _Candidates:
        by_key: dict[str, list[Entry]] = {}
        for entry in entries:
            if not entry.phrase.single_word:
                for key in entry.phrase.required:
                    by_key.setdefault(key, []).append(entry)
        return _Candidates(singles=tuple(e for e in entries if e.phrase.single_word),
                           always=tuple(e for e in entries if not e.phrase.single_word and not e.phrase.required),
                           keys=frozenset(by_key), by_key={key: tuple(found) for key, found in by_key.items()},
                           none=not entries)

    def _lookup(self, word: str) -> list[Entry]:
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
        return list(found.values())

    def find(self, tokens: Tokens) -> dict[str, list[Match]]:
        """Every phrase found, by entry kind (every kind of the lexicon is a key, with a list maybe empty)."""
        found: dict[str, list[Match]] = {kind: [] for kind in self.kinds}
        present = set(tokens.words)
        cache, joined, starts = self._cache, tokens.joined, tokens.starts
        for index, word in enumerate(tokens.words):
            candidates = cache.get(word) or self._candidates(word)
            if candidates.none:
                continue
            for entry in candidates.singles:
                found[entry.kind].append(Match(entry, index, index + 1))
            tried = candidates.always
            if candidates.keys:
                hits = candidates.keys.intersection(present)
                if hits:
                    tried = list(tried)
                    for key in hits:
                        tried.extend(entry for entry in candidates.by_key[key] if not entry.phrase.also_required
                                     or not entry.phrase.also_required.isdisjoint(present))
                    if len(hits) > 1:
                        tried = list(dict.fromkeys(tried))  # an entry may be listed under two required words
            for entry in tried:
                hit = entry.phrase.regex.match(joined, starts[index])
                if hit is not None:
                    found[entry.kind].append(Match(entry, index, tokens.index_at(hit.end())))
        return found
