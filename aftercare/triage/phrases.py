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
    ~~ ~~N    the same, but commas may be crossed too: a list told with commas ("hard, red, sore") or a
              before-and-after told across one ("like a coin yesterday, like a saucer today")
    ~=N ~~=N  a scope gap: the same, and it never crosses a word of class @frame_stop either ("if", "kalau",
              "warned"): the wide faculty frames reach across a sentence, so a cue inside them would be lost
    $         the end of the clause (a comma, stop or question mark follows, or the reply ends)
    >spec     (last only) the spec must follow, but is not part of the match: "will it >swell|bruise" is a
              hypothetical cue that leaves "swell" to be read as a sign inside its scope
    -spec     (last only) the spec must not follow: "is gone -white|purple" is a recovery, "has gone white" not

The first spec must be a required word, class or number: phrases are looked up by their first token.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from aftercare.triage.text import STOP_MARK, fold

_WORD = re.compile(r"^[a-z0-9][a-z0-9./]*\*?$")
GAP_WORD = "[^ ,.?!][^ ]*"  # one ordinary word: not punctuation, not a marked stop word
LIST_GAP_WORD = "[^ .?!][^ ]*"  # the same, or a comma
_GAP = re.compile(r"^~(\d*)$")
_LIST_GAP = re.compile(r"^~~(\d*)$")
_SCOPE_GAP = re.compile(r"^(~~?)=(\d+)$")
FRAME_STOP_CLASS = "frame_stop"
_DEFAULT_GAP = 3


class PhraseError(ValueError):
    """A lexicon phrase that does not follow the pattern language."""


@dataclass(frozen=True, slots=True)
class CompiledPhrase:
    regex: re.Pattern[str]
    first_words: frozenset[str]
    first_prefixes: frozenset[str]
    starts_with_number: bool
    # Two later required tokens made of plain words only (the most selective): a reply lacking every word
    # of either cannot match, so the regex is not even tried. Most candidate phrases fail this cheap test.
    required: frozenset[str] = frozenset()
    also_required: frozenset[str] = frozenset()
    single_word: bool = False  # one plain token: finding it in the index is already a match


@dataclass(slots=True)
class _FirstToken:
    words: set[str]
    prefixes: set[str]
    number: bool = False


@dataclass(slots=True)
class _Plain:
    """Collects the plain words of one token spec; `plain` turns false on a prefix, number or regex."""

    words: set[str]
    plain: bool = True


class PhraseCompiler:
    """Compiles phrases for a reply tokenized with `stop_words` marked (see `Tokens.joined`): a gap is then
    any word not starting with the mark, which keeps every regex free of look-aheads, and fast."""

    def __init__(self, classes: Mapping[str, Sequence[str]], numbers: Mapping[str, int], stop_words: Collection[str]):
        self._classes = {name: [self._word(word, f"class @{name}") for word in words]
                         for name, words in classes.items()}
        self._number_words = sorted(numbers, key=len, reverse=True)
        self._stops = frozenset(stop_words)
        guarded = sorted({word for word in self._classes.get(FRAME_STOP_CLASS, ()) if not word.endswith("*")})
        self._scope_guard = f"(?!(?:{'|'.join(map(re.escape, guarded))}) )" if guarded else ""

    def compile(self, phrase: str) -> CompiledPhrase:
        specs = phrase.split()
        if not specs:
            raise PhraseError("empty phrase")
        if specs[0].startswith("~") or specs[0].startswith("[") or specs[0] == "$":
            raise PhraseError(f"{phrase!r}: the first token must be required (not a gap or [optional])")
        if specs[-1].startswith("~"):
            raise PhraseError(f"{phrase!r}: a phrase cannot end with a gap")
        if any(spec[0] in ">-" for spec in specs[:-1]) or specs[0][0] in ">-":
            raise PhraseError(f"{phrase!r}: only the last token, not the first, may be a look-ahead (>spec, -spec)")
        first = _FirstToken(words=set(), prefixes=set())
        parts, required = [], []
        for index, spec in enumerate(specs):
            plain = _Plain(words=set())
            parts.append(self._unit(spec, first if index == 0 else None, plain))
            if index > 0 and plain.plain and plain.words:
                required.append(frozenset(plain.words))
        single = len(specs) == 1 and not first.number
        required.sort(key=len)
        required += [frozenset(), frozenset()]
        return CompiledPhrase(regex=re.compile("".join(parts)), first_words=frozenset(first.words),
                              first_prefixes=frozenset(first.prefixes), starts_with_number=first.number,
                              required=required[0], also_required=required[1], single_word=single)

    def _unit(self, spec: str, first: _FirstToken | None, plain: _Plain) -> str:
        if spec == "$":
            return "(?=[,.?] |$)"
        if spec.startswith(">"):
            return f"(?={self._alternatives(spec[1:], None, _Plain(words=set()))} )"
        if spec.startswith("-"):
            return f"(?!{self._alternatives(spec[1:], None, _Plain(words=set()))} )"
        gap = _SCOPE_GAP.match(spec)
        if gap:
            word = LIST_GAP_WORD if gap.group(1) == "~~" else GAP_WORD
            return f"(?:{self._scope_guard}{word} ){{0,{int(gap.group(2))}}}?"
        gap = _LIST_GAP.match(spec)
        if gap:
            return f"(?:{LIST_GAP_WORD} ){{0,{int(gap.group(1) or _DEFAULT_GAP)}}}?"
        gap = _GAP.match(spec)
        if gap:
            return f"(?:{GAP_WORD} ){{0,{int(gap.group(1) or _DEFAULT_GAP)}}}?"
        if spec.startswith("[") and spec.endswith("]"):
            return f"(?:{self._alternatives(spec[1:-1], None, _Plain(words=set()))} )?"
        return f"{self._alternatives(spec, first, plain)} "

    def _alternatives(self, spec: str, first: _FirstToken | None, plain: _Plain) -> str:
        if spec.startswith("/") and spec.endswith("/") and len(spec) > 2:
            plain.plain = False
            if first is not None:
                first.number = True
            return f"(?:{spec[1:-1]})"
        pieces = []
        for alternative in spec.split("|"):
            pieces.extend(self._alternative(alternative, first, plain))
        return "(?:" + "|".join(sorted(set(pieces), key=len, reverse=True)) + ")"

    def _alternative(self, alternative: str, first: _FirstToken | None, plain: _Plain) -> list[str]:
        if alternative == "#":
            plain.plain = False
            if first is not None:
                first.number = True
                first.words.update(self._number_words)
            return [r"\d+", *map(re.escape, self._number_words)]
        if alternative.startswith("@"):
            name = alternative[1:]
            if name not in self._classes:
                raise PhraseError(f"unknown class @{name}")
            return [self._word_regex(word, first, plain) for word in self._classes[name]]
        return [self._word_regex(self._word(alternative, "phrase"), first, plain)]

    @staticmethod
    def _word(raw: str, where: str) -> str:
        word = fold(raw)
        if not _WORD.match(word):
            raise PhraseError(f"{where}: {raw!r} is not a word (letters, digits, '.', '/', optional trailing '*')")
        return word

    def _word_regex(self, word: str, first: _FirstToken | None, plain: _Plain) -> str:
        if word.endswith("*"):
            stem = word[:-1]
            plain.plain = False
            if first is not None:
                first.prefixes.add(stem)
            marked = any(stop.startswith(stem) for stop in self._stops)
            return ("!?" if marked else "") + re.escape(stem) + "[^ ]*"
        if first is not None:
            first.words.add(word)
        plain.words.add(word)
        return re.escape(STOP_MARK + word if word in self._stops else word)
