"""Finds every lexicon phrase in a tokenized reply, trying only the phrases that can start at each token."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import NamedTuple

from aftercare.triage.phrases import CompiledPhrase
from aftercare.triage.text import Tokens

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
    unless: str = ""  # sign phrases that do not count when the sentence has this context ("cold" by the aircon)
    # A wide frame spans a whole clause or sentence ("vision ... blurring, just a small bruise under the eye"): the
    # other signs inside it are still told, so it hides none of them.
    hides: bool = True


class Match(NamedTuple):
    entry: Entry
    start: int  # first token
    end: int  # one past the last token


# A phrase to try at a token: (kind, entry, its regex's match method).
_Attempt = tuple[str, Entry, Callable[..., "re.Match[str] | None"]]


class _Candidates(NamedTuple):
    """The phrases that may start at one word, sorted by how cheaply they can be ruled out."""

    singles: tuple[tuple[str, Entry], ...]  # the phrase is this one word: found in the index means matched
    always: tuple[_Attempt, ...]  # no plain required word to test: always tried
    keys: frozenset[str]  # required words (both tests) of the remaining phrases
    # the required words a reply holds -> `always` and the phrases whose two tests they pass, in the candidates' own
    # order (set order varies from run to run); filled as replies come
    combined: dict[frozenset[str], tuple[_Attempt, ...]]
    # required word -> (place among the candidates, phrase, words of which one must be in the reply too)
    by_key: dict[str, tuple[tuple[int, _Attempt, frozenset[str]], ...]]


_place = itemgetter(0)
_new_match = tuple.__new__  # builds a Match without the Python-level NamedTuple constructor (hot loop)


class _CandidateCache(dict[str, "_Candidates | None"]):
    """word -> the phrases that may start at it (None: no phrase), looked up once per word ever seen."""

    def __init__(self, make: Callable[[str], _Candidates | None]):
        super().__init__()
        self._make = make

    def __missing__(self, word: str) -> _Candidates | None:
        found = self[word] = self._make(word)
        return found


class PhraseMatcher:
    """Indexes phrases by their possible first word so a reply costs a few dict lookups per token.

    One big alternation regex would be tried at every character of the reply; this tries a handful of
    anchored regexes per token instead, and only those whose required words all occur in the reply.
    """

    def __init__(self, entries: Iterable[Entry]):
        self._by_word: dict[str, list[Entry]] = {}
        self._by_prefix: dict[str, list[Entry]] = {}
        self._by_number: list[Entry] = []
        unique = {(e.kind, e.key, e.phrase.regex.pattern, e.value, e.needs, e.unless): e for e in entries}
        for entry in unique.values():  # both languages may list the same phrase
            phrase = entry.phrase
            for word in phrase.first_words:
                self._by_word.setdefault(word, []).append(entry)
            for prefix in phrase.first_prefixes:
                self._by_prefix.setdefault(prefix, []).append(entry)
            if phrase.starts_with_number:
                self._by_number.append(entry)
        self._prefix_lengths = sorted({len(prefix) for prefix in self._by_prefix})
        self._cache = _CandidateCache(self._candidates)

    def candidates(self, word: str) -> tuple[Entry, ...]:
        """Every phrase that may start at `word` (for tests and tools)."""
        return tuple(self._lookup(word))

    def _candidates(self, word: str) -> _Candidates | None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        return self._sorted(self._lookup(word))

    @staticmethod
    def _sorted(entries: list[Entry]) -> _Candidates | None:
        if not entries:
            return None  # many words start no phrase at all
        by_key: dict[str, list[tuple[int, _Attempt, frozenset[str]]]] = {}
        also: set[str] = set()
        always = []
        for place, entry in enumerate(entries):
            phrase = entry.phrase
            if phrase.single_word:
                continue
            attempt = (entry.kind, entry, phrase.regex.match)
            if not phrase.required:  # then it has no `also_required` either
                always.append(attempt)
            for key in phrase.required:
                by_key.setdefault(key, []).append((place, attempt, phrase.also_required))
            also |= phrase.also_required
        return _Candidates(singles=tuple((e.kind, e) for e in entries if e.phrase.single_word), always=tuple(always),
                           keys=frozenset(by_key).union(also), combined={},
                           by_key={key: tuple(found) for key, found in by_key.items()})

    @staticmethod
    def _combined(candidates: _Candidates, hits: frozenset[str]) -> tuple[_Attempt, ...]:
        """`always` and every phrase needing a word of `hits` and, if it has them, one of its `also_required` words,
        once for each of its required words in `hits` (a phrase listed under two words the reply holds is tried twice,
        as it always was), in the candidates' order."""
        by_key = candidates.by_key
        needing = sorted((found for key in hits if key in by_key for found in by_key[key]
                          if not found[2] or not found[2].isdisjoint(hits)), key=_place)
        found = candidates.combined[hits] = candidates.always + tuple(attempt for _, attempt, _ in needing)
        return found

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

    def find(self, tokens: Tokens) -> defaultdict[str, list[Match]]:
        """Every phrase found, by entry kind (a kind with nothing found reads as an empty list), those found at one
        token in the order of the candidates. A phrase listed under two of its required words may be found twice
        (one after the other); every consumer tolerates that."""
        found: defaultdict[str, list[Match]] = defaultdict(list)
        cache, joined, starts = self._cache, tokens.joined, tokens.starts
        present = tokens.present
        new_match, combined = _new_match, self._combined
        for index, word in enumerate(tokens.words):
            candidates = cache[word]
            if candidates is None:
                continue
            singles, attempts, keys, known, _ = candidates
            for kind, entry in singles:
                found[kind].append(new_match(Match, (entry, index, index + 1)))
            if keys:
                hits = keys.intersection(present)  # a frozenset: the key of the phrases to try
                if hits:
                    attempts = known.get(hits)
                    if attempts is None:
                        attempts = combined(candidates, hits)
            for kind, entry, match in attempts:
                hit = match(joined, starts[index])
                if hit is not None:
                    found[kind].append(new_match(Match, (entry, index, bisect_left(starts, hit.end()))))
        return found
