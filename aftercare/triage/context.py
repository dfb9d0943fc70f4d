"""Decides, for every sign found in a reply, whether the patient actually has it now.

In the manner of NegEx/ConText: cue phrases (triggers) cast a scope over nearby signs. A negation reaches
the first sign after it and the signs listed with it ("nothing is white or grey"); a hypothetical reaches
to the end of its clause ("what if it gets pus?"); a third party reaches until the patient speaks of
themselves again ("my friend had pus, mine is fine"). A harmless explanation cancels the colour it
explains, a bruise explains a bruise-coloured patch next to it, and a sign said to have passed is kept
apart: a clinician still needs to hear about an occlusion sign that went away.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property

from aftercare.triage.lexicon import Lexicon, SignInfo
from aftercare.triage.matcher import Match
from aftercare.triage.text import COMMA, PUNCTUATION, Tokens

NEGATION_WINDOW = 5  # words between a negation and its first sign ("not really feeling that feverish")
POST_NEGATION_WINDOW = 2  # "swelling is fine"
RECOVERY_WINDOW = 6  # "the white patch on my lip went away"
HYPOTHETICAL_WINDOW = 12
THIRD_PARTY_WINDOW = 15
_AND = frozenset({"and", "dan", "plus"})
# Of two triggers over the same words, the one that keeps a sign in play wins ("totally normal" after a
# past sign is a recovery, not a denial).
_PRIORITY = {"pseudo": 0, "recovered": 1, "passed": 2, "passed_brief": 2, "negation_gone": 3}


class Flag:
    """Bits set on a mention (plain ints rather than an IntFlag: enum arithmetic is slow and this runs for
    every reply)."""

    ABSENT = 1  # "no fever"
    GONE = 2  # "not hot anymore", "went white for an hour, fine now"
    HYPOTHETICAL = 4  # "what if it gets pus?"
    THIRD_PARTY = 8  # "my friend had pus"
    EXPLAINED = 16  # "the white patch was my concealer", "small bruise, a bit blue"


DROPPED = Flag.HYPOTHETICAL | Flag.THIRD_PARTY | Flag.EXPLAINED


@dataclass(slots=True, eq=False)
class Mention:
    """One place a sign is named in the reply."""

    sign: SignInfo
    start: int
    end: int
    flags: int = 0

    @property
    def present(self) -> bool:
        return not self.flags

    @property
    def passed(self) -> bool:
        return bool(self.flags & Flag.GONE) and not self.flags & DROPPED


class Cues:
    """What the reply says besides its signs. Triggers and harmless explanations come from the matcher;
    the places of plain cue words (past tense, lasting, hedges, question words) are looked up only when a
    rule asks, since most replies never need them."""

    def __init__(self, tokens: Tokens, lexicon: Lexicon, found: dict[str, list[Match]]):
        self.triggers, self.harmless = found["trigger"], found["harmless"]
        self._tokens, self._lexicon, self._found = tokens, lexicon, found
        self._starts: dict[str, list[int]] = {}

    def starts(self, kind: str) -> list[int]:
        """Token indexes where a cue of this kind ("past", "persist", "hedge", ...) begins."""
        found = self._starts.get(kind)
        if found is None:
            words, tokens = self._lexicon.mark_words[kind], self._tokens
            found = [] if words.isdisjoint(tokens.present) else [i for i, w in enumerate(tokens.words) if w in words]
            found += [match.start for match in self._found[kind]]
            self._starts[kind] = found
        return found


def apply_context(tokens: Tokens, lexicon: Lexicon, mentions: list[Mention], cues: Cues) -> None:
    """Set the flags of every mention; the most specific cue kinds run last only where order matters."""
    if not mentions:
        return
    scope = _Scope(tokens, lexicon, mentions, cues)
    if cues.triggers:
        for trigger in _usable_triggers(cues.triggers, mentions):
            _HANDLERS[trigger.entry.key](scope, trigger)
    if cues.harmless:
        scope.apply_harmless(cues.harmless)
    scope.apply_bruises()


def _usable_triggers(triggers: list[Match], mentions: list[Mention]) -> list[Match]:
    """No trigger may sit inside a sign ("can't see properly" is a sign, not a negation of one); of the rest,
    the longest wins where they overlap ("not sure if" over "if"), a pseudo-trigger before any other."""
    outside = [t for t in triggers if not _overlaps_any(t.start, t.end, mentions)]
    if len(outside) > 1:
        outside.sort(key=_longest_first)
    chosen: list[Match] = []
    last_end = -1
    for match in outside:
        if match.start >= last_end:
            last_end = match.end
            if match.entry.key != "pseudo":
                chosen.append(match)
    return chosen


def _longest_first(match: Match) -> tuple[int, int, int]:
    return match.start, match.start - match.end, _PRIORITY.get(match.entry.key, 9)


def _overlaps_any(start: int, end: int, mentions: Iterable[Mention]) -> bool:
    return any(m.start < end and start < m.end for m in mentions)


class _Scope:
    def __init__(self, tokens: Tokens, lexicon: Lexicon, mentions: list[Mention], cues: Cues):
        self.tokens, self.words, self.lexicon = tokens, lexicon.words, lexicon
        self.mentions = mentions  # in reading order: the matcher scans tokens left to right
        self.cues = cues
        self.starting: dict[int, list[Mention]] = {}
        self.ending: dict[int, list[Mention]] = {}
        for mention in mentions:
            self.starting.setdefault(mention.start, []).append(mention)
            self.ending.setdefault(mention.end, []).append(mention)

    @cached_property
    def _past_clauses(self) -> set[int]:
        return {self.tokens.clause[index] for index in self.cues.starts("past")}

    @cached_property
    def _persist_clauses(self) -> set[int]:
        return {self.tokens.clause[index] for index in self.cues.starts("persist")}

    # --- triggers ----------------------------------------------------------------------------------------
    def _on_negation(self, trigger: Match) -> None:
        self._flag(self._negated_after(trigger.end), Flag.ABSENT)

    def _on_negation_gone(self, trigger: Match) -> None:
        self._flag(self._negated_after(trigger.end), Flag.ABSENT | Flag.GONE)

    def _on_negation_both(self, trigger: Match) -> None:
        found = self._negated_after(trigger.end) or self._negated_before(trigger.start, POST_NEGATION_WINDOW)
        self._flag(found, Flag.ABSENT)

    def _on_negation_post(self, trigger: Match) -> None:
        if not self.tokens.ends_with_question(trigger.start):  # "pale lip, is this normal?" denies nothing
            self._flag(self._negated_before(trigger.start, POST_NEGATION_WINDOW), Flag.ABSENT)

    def _on_gone_if_negated(self, trigger: Match) -> None:
        found = self._negated_before(trigger.start, NEGATION_WINDOW)
        self._flag([m for m in found if m.flags & Flag.ABSENT], Flag.GONE)

    def _on_recovered(self, trigger: Match) -> None:
        if self.tokens.ends_with_question(trigger.start):  # "is it back to normal?" asks, it does not tell
            return
        self._flag(self._negated_before(trigger.start, RECOVERY_WINDOW), Flag.GONE)
        if self._speaks_of_nothing_else(trigger):
            self._flag(self._past_signs_before(trigger), Flag.GONE)

    def _on_passed(self, trigger: Match) -> None:
        clause = self.tokens.clause[trigger.start]
        if clause in self._past_clauses and clause not in self._persist_clauses:
            self._flag(self._in_clause(clause), Flag.GONE)

    def _on_passed_brief(self, trigger: Match) -> None:
        clause = self.tokens.clause[trigger.start]
        if clause not in self._persist_clauses:
            self._flag(self._in_clause(clause), Flag.GONE)

    def _on_hypothetical(self, trigger: Match) -> None:
        found = self._clause_after(trigger.end, HYPOTHETICAL_WINDOW)
        if found:
            found += self._chain(found[-1:], forward=True)
        self._flag(found, Flag.HYPOTHETICAL)

    def _on_third_party(self, trigger: Match) -> None:
        self._flag(self._until_first_person(trigger.end), Flag.THIRD_PARTY)

    # --- scopes ------------------------------------------------------------------------------------------
    def _negated_after(self, index: int) -> list[Mention]:
        """The first sign within a few words, and the signs listed with it."""
        words, size = self.tokens.words, len(self.tokens)
        for position in range(index, min(size, index + NEGATION_WINDOW + 1)):
            if position in self.starting:
                return self._chain(self.starting[position], forward=True)
            if self._blocks(words[position]):
                return []
        return []

    def _negated_before(self, index: int, window: int) -> list[Mention]:
        """The nearest sign ending a few words before, and the signs listed with it; "and" stops the search
        so "white and the swelling is fine" keeps the white."""
        words = self.tokens.words
        for position in range(index, max(-1, index - window - 1), -1):
            if position in self.ending:
                return self._chain(self.ending[position], forward=False)
            if position > 0 and (self._blocks(words[position - 1]) or words[position - 1] in _AND):
                return []
        return []

    def _blocks(self, word: str) -> bool:
        return word in PUNCTUATION or word in self.words.clause_break or word in self.words.scope_stop

    def _chain(self, first: list[Mention], *, forward: bool) -> list[Mention]:
        """Signs joined to `first` by list words: "white or grey", "fever, chills or pus". A comma alone
        does not make a list ("no fever, chills" may well report chills), so it needs an "or" somewhere."""
        chain, words = list(first), self.tokens.words
        edge = max(m.end for m in first) if forward else min(m.start for m in first)
        comma_cut, has_or = -1, False
        while True:
            position, saw_comma, saw_or = edge, False, False
            while self._is_link_at(position, forward):
                word = words[position if forward else position - 1]
                saw_comma, saw_or = saw_comma or word == COMMA, saw_or or word in self.words.or_words
                position += 1 if forward else -1
            group = (self.starting if forward else self.ending).get(position)
            if not group:
                break
            if saw_comma and comma_cut < 0:
                comma_cut = len(chain)
            has_or = has_or or saw_or
            chain.extend(group)
            edge = max(m.end for m in group) if forward else min(m.start for m in group)
        if comma_cut >= 0 and not has_or:
            chain = chain[:comma_cut]
        return chain

    def _is_link_at(self, position: int, forward: bool) -> bool:
        index = position if forward else position - 1
        if not 0 <= index < len(self.tokens) or (position in (self.starting if forward else self.ending)):
            return False
        word = self.tokens.words[index]
        return word == COMMA or word in self.words.list_link or word in self.words.or_words

    def _clause_after(self, index: int, window: int) -> list[Mention]:
        if index >= len(self.tokens):
            return []
        clause = self.tokens.clause[index] if self.tokens.words[index] not in PUNCTUATION else -1
        return [m for m in self.mentions if index <= m.start < index + window and self.tokens.clause[m.start] == clause]

    def _until_first_person(self, index: int) -> list[Mention]:
        words, size = self.tokens.words, len(self.tokens)
        end = index
        while end < min(size, index + THIRD_PARTY_WINDOW):
            word = words[end]
            if word in (".", "?") or word in self.words.first_person or word in self.words.clause_break:
                break
            if len(word) > 4 and word.endswith("ku"):  # "bibirku": the patient speaks of herself again
                break
            end += 1
        return [m for m in self.mentions if index <= m.start < end]

    def _in_clause(self, clause: int) -> list[Mention]:
        return [m for m in self.mentions if self.tokens.clause[m.start] == clause]

    def _speaks_of_nothing_else(self, trigger: Match) -> bool:
        """ "looks normal again today" recovers what came before; "the swelling went away" only the swelling."""
        clause = self.tokens.clause[trigger.start]
        if any(self.tokens.clause[m.start] == clause for m in self.mentions):
            return False
        words, clauses = self.tokens.words, self.tokens.clause
        return not any(clauses[i] == clause and words[i] in self.words.body_part for i in range(len(words)))

    def _past_signs_before(self, trigger: Match) -> list[Mention]:
        """Signs earlier in this sentence or the one before, told in the past tense and not as lasting."""
        sentence, tokens = self.tokens.sentence[trigger.start], self.tokens
        return [m for m in self.mentions
                if m.end <= trigger.start and sentence - 1 <= tokens.sentence[m.start] <= sentence
                and tokens.clause[m.start] in self._past_clauses
                and tokens.clause[m.start] not in self._persist_clauses]

    @staticmethod
    def _flag(mentions: Iterable[Mention], flag: int) -> None:
        for mention in mentions:
            mention.flags |= flag

    # --- harmless explanations and bruises ---------------------------------------------------------------
    def apply_harmless(self, harmless: list[Match]) -> None:
        """ "The white patch was my concealer" cancels the colour; "might just be the light?" does not."""
        for match in harmless:
            if self._hedged(match.start) or _overlaps_any(match.start, match.end, self._explainable()):
                continue
            target = self._explained_by(match)
            if target is not None:
                clause = self.tokens.clause[target.start]
                self._flag([m for m in self._explainable() if self.tokens.clause[m.start] == clause], Flag.EXPLAINED)
                target.flags |= Flag.EXPLAINED

    def _explainable(self) -> list[Mention]:
        return [m for m in self.mentions if m.sign.explainable and not m.flags & DROPPED]

    def _hedged(self, index: int) -> bool:
        sentence = self.tokens.sentence[index]
        if self.tokens.ends_with_question(index):
            return True
        return any(self.tokens.sentence[start] == sentence for start in self.cues.starts("hedge"))

    def _explained_by(self, match: Match) -> Mention | None:
        sentence = self.tokens.sentence[match.start]
        same = [m for m in self._explainable() if self.tokens.sentence[m.start] == sentence]
        before = [m for m in same if m.end <= match.start]
        if before:
            return before[-1]
        after = [m for m in same if m.start >= match.end]
        return after[0] if after else None

    def apply_bruises(self) -> None:
        """A blue or purple patch told together with a bruise is the bruise ("bruise on my lip, kinda
        purple now"), unless another body part comes in between ("bruise on my chin and my lip is blue")."""
        bruises = [m for m in self.mentions if m.sign.id == "bruising" and not m.flags]
        if not bruises:
            return
        for mention in self.mentions:
            if mention.sign.bruise_colour and not mention.flags:
                if any(self._same_patch(mention, bruise) for bruise in bruises):
                    mention.flags |= Flag.EXPLAINED

    def _same_patch(self, colour: Mention, bruise: Mention) -> bool:
        tokens, words = self.tokens, self.words
        if tokens.sentence[colour.start] != tokens.sentence[bruise.start]:
            return False
        start, end = sorted((colour.end, bruise.end))[0], sorted((colour.start, bruise.start))[1]
        for index in range(start, end):
            word = tokens.words[index]
            if word in words.clause_break:
                return False
            if word in words.body_part and not any(tokens.words[i] in words.location_prep
                                                   for i in range(max(start, index - 2), index)):
                return False
        return True


_HANDLERS: dict[str, Callable[[_Scope, Match], None]] = {
    name.removeprefix("_on_"): function for name, function in vars(_Scope).items() if name.startswith("_on_")
}
