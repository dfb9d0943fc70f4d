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
from functools import cached_property

from aftercare.triage.lexicon import HARMLESS_KINDS, Lexicon
from aftercare.triage.matcher import Match
from aftercare.triage.mentions import DROPPED, Flag, Mention
from aftercare.triage.text import COMMA, PUNCTUATION, QUESTION, STOP, Tokens

NEGATION_WINDOW = 5  # words between a negation and its first sign ("not really feeling that feverish")
POST_NEGATION_WINDOW = 2  # "swelling is fine"
RECOVERY_WINDOW = 6  # "the white patch on my lip went away"
HYPOTHETICAL_WINDOW = 12
THIRD_PARTY_WINDOW = 15
LIST_WINDOW = 30  # "none of the things on your list have happened, the fever, the chills, the yellow discharge"
# Signs told beside a colour that leave its harmless cause standing; tenderness and stinging are pain, so they do not.
_HARMLESS_GROUPS = frozenset({"expected", "concern"})
_PAIN = frozenset({"tenderness", "stinging"})
_AND = frozenset({"and", "dan", "plus"})
_SENTENCE_ENDS = frozenset({STOP, QUESTION})
# Of two triggers over the same words, the one that keeps a sign in play wins ("totally normal" after a
# past sign is a recovery, not a denial).
# "for a minute" is listed as brief, so it beats the past-tense-only reading of the same words.
_PRIORITY = {"pseudo": 0, "recovered": 1, "passed_brief": 2, "passed": 3, "negation_gone": 4, "negation_answer": 5}


class Cues:
    """What the reply says besides its signs. Triggers and harmless explanations come from the matcher;
    the places of plain cue words (past tense, lasting, hedges, question words) are looked up only when a
    rule asks, since most replies never need them."""

    def __init__(self, tokens: Tokens, lexicon: Lexicon, found: dict[str, list[Match]]):
        self.triggers = found["trigger"]
        self.context = found["context"]
        self.idioms = found["except"]  # "pucet liat tagihan": words of an idiom tell of no sign nor faculty
        self.harmless = [match for kind in HARMLESS_KINDS for match in found[kind]] if any(
            found[kind] for kind in HARMLESS_KINDS[1:]) else found["harmless"]
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
    """Set the flags of every mention: triggers in reading order, then harmless explanations and bruises,
    which only look at the mentions still standing."""
    if not mentions:
        return
    scope = _Scope(tokens, lexicon, mentions, cues)
    if cues.triggers:
        triggers = _usable_triggers([t for t in cues.triggers if t.entry.key != "negation_answer"
                                     or _answers(t, tokens)], mentions)
        if any(trigger.entry.key == "proxy" for trigger in triggers):
            # "I'm her husband, she can't lift her arm": the relative speaks of the patient.
            triggers = [trigger for trigger in triggers if trigger.entry.key != "third_party"]
        elif any(trigger.entry.key == "proxy_for" for trigger in cues.triggers):
            triggers = _without_patient_as_third_party(triggers, cues.triggers, tokens, lexicon)
        elif not _writer_speaks_of_self(triggers, tokens, lexicon):
            # "my wife's lip has gone white", "istri saya bibirnya biru": the relative is the message's subject,
            # so the patient (CLINICAL-NOTES.md: a sign is dropped only when clearly someone else's). "A girl I
            # know", "someone" name nobody the writer would report for.
            # A relative's sign is the patient's only when tied to a treatment: "anak aku lagi demam" with no
            # treatment, treated area or emergency faculty named is a child's illness, told to move a visit.
            if _tied_to_treatment(tokens, lexicon, mentions, cues):
                triggers = [t for t in triggers
                            if t.entry.key != "third_party" or not _names_relative(t, tokens, lexicon)]
        for trigger in triggers:
            _HANDLERS[trigger.entry.key](scope, trigger)
    if cues.harmless:
        scope.apply_harmless(cues.harmless)
    scope.apply_bruises()


# Signs a relative would tell only as the patient's own: an eye, a stroke or an allergic reaction after treatment.
_PATIENT_GROUPS = frozenset({"eye", "stroke", "anaphylaxis"})
_TREATMENT_CONTEXTS = ("injectable", "filler", "non_injectable", "mesotherapy")


def _tied_to_treatment(tokens: Tokens, lexicon: Lexicon, mentions: list[Mention], cues: Cues) -> bool:
    """ "my wife's lip has gone white", "bibir anak saya biru abis filler": a treated area or a treatment is named,
    so the relative is the patient; "my son has a fever" names neither, so he is a third party (routine: a
    person reads it). CLINICAL-NOTES.md: a sign is dropped only when clearly someone else's."""
    if not lexicon.words.body_part.isdisjoint(tokens.present):
        return True
    if any(m.sign.group in _PATIENT_GROUPS for m in mentions):
        return True
    contexts = lexicon.context_words
    if any(not contexts.get(key, frozenset()).isdisjoint(tokens.present) for key in _TREATMENT_CONTEXTS):
        return True
    return any(c.entry.key in _TREATMENT_CONTEXTS for c in cues.context)


def _without_patient_as_third_party(triggers: list[Match], every: list[Match], tokens: Tokens,
                                    lexicon: Lexicon) -> list[Match]:
    """ "my husband had filler today and now his lip is white": the husband is the patient, so "my husband"
    casts no third-party scope; "...and my grandma has a fever" still does (CLINICAL-NOTES.md: the patient's
    own signs decide)."""
    relatives, words = lexicon.words.relative, tokens.words
    proxies = [t for t in every if t.entry.key == "proxy_for"]
    patients = {word for p in proxies for word in words[p.start:p.end] if word in relatives}

    def names_patient(trigger: Match) -> bool:
        return (_overlaps_any_span(trigger, proxies)
                or not patients.isdisjoint(words[trigger.start:trigger.end]))

    return [t for t in triggers if t.entry.key != "third_party" or not names_patient(t)]


def _writer_speaks_of_self(triggers: list[Match], tokens: Tokens, lexicon: Lexicon) -> bool:
    """Whether the writer says anything of herself besides naming the relative: "my son has a fever so I'm tired"
    does ("I'm"), "my daughter says her vision is blurry" does not ("my" is part of "my daughter", "saya" of
    "istri saya"), nor does "I think my wife's lip is white" ("I think" tells nothing of the writer's body)."""
    parties = [t for t in triggers if t.entry.key == "third_party" and _names_relative(t, tokens, lexicon)]
    if not parties or not lexicon.words.remote_past.isdisjoint(tokens.present):
        return True
    words, own, relatives = tokens.words, lexicon.words.first_person, lexicon.words.relative
    meta = lexicon.words.writer_meta
    for index, word in enumerate(words):
        if word not in own or any(t.start <= index < t.end for t in parties):
            continue
        if index and words[index - 1] in relatives:  # "istri saya", "bapak aku"
            continue
        if any(word in meta for word in words[index + 1:index + 3]):  # "I think", "I'm just asking", "aku rasa"
            continue
        return True
    return False


def _names_relative(trigger: Match, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "my wife", "my wife's" (folded "wifes"), "istri saya", "my friend": someone the writer may report for."""
    relatives = lexicon.words.relative | lexicon.words.companion
    return any(word in relatives or word[:-1] in relatives for word in tokens.words[trigger.start:trigger.end])


def _answers(trigger: Match, tokens: Tokens) -> bool:
    """ "pus? none", "fever: nope": the answer opens its own clause, right after a mark."""
    return trigger.start >= 2 and tokens.words[trigger.start - 1] in PUNCTUATION


def _overlaps_any_span(match: Match, others: Iterable[Match]) -> bool:
    return any(o.start < match.end and match.start < o.end for o in others)


def _usable_triggers(triggers: list[Match], mentions: list[Mention]) -> list[Match]:
    """No trigger may sit inside a sign ("can't see properly" is a sign, not a negation of one); of the rest,
    the longest wins where they overlap ("not sure if" over "if"), a pseudo-trigger before any other."""
    outside = [t for t in triggers if not _inside_sign(t, mentions)]
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


def _inside_sign(trigger: Match, mentions: list[Mention]) -> bool:
    """Inside a sign phrase ("can't see properly"), or on the part or loss word of a wide frame; a cue in the gap of
    a wide frame still counts ("mata buram sebentar abis tetes mata": briefly, after eye drops)."""
    for m in mentions:
        if m.start < trigger.end and trigger.start < m.end:
            if not m.wide or trigger.start <= m.start or trigger.end >= m.end:
                return True
    return False


def _longest_first(match: Match) -> tuple[int, int, int, str, str]:
    """Sort key; the kind and key break the last ties, so the outcome never hangs on the order the matcher
    happened to find two cues over the same words in (set iteration order differs between processes)."""
    entry = match.entry
    return match.start, match.start - match.end, _PRIORITY.get(entry.key, 9), entry.kind, entry.key


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
        """Clauses that tell a sign as lasting or present ("still", "been", "is"): it has not passed."""
        return {self.tokens.clause[index] for index in self.cues.starts("persist")}

    @cached_property
    def _statement_start(self) -> frozenset[str]:
        return self.words.determiner | self.words.body_part

    @cached_property
    def _after_list(self) -> frozenset[str]:
        return self.words.determiner | {COMMA}

    @cached_property
    def _mention_stops(self) -> frozenset[str]:
        """Where a list of risks named ends: "now", "just", "because"."""
        return self.words.scope_stop | self.words.reason

    # --- triggers ----------------------------------------------------------------------------------------
    def _on_negation(self, trigger: Match) -> None:
        self._flag(self._negated_after(trigger.end), Flag.ABSENT)

    def _on_negation_gone(self, trigger: Match) -> None:
        self._flag(self._negated_after(trigger.end), Flag.ABSENT | Flag.GONE)

    def _on_negation_both(self, trigger: Match) -> None:
        found = self._negated_after(trigger.end) or self._negated_before(self._answer(trigger), POST_NEGATION_WINDOW)
        self._flag(found, Flag.ABSENT)

    def _on_negation_answer(self, trigger: Match) -> None:
        """ "checked for pus like you said: none", "fever? nope": an answer standing on its own after a colon, comma
        or question mark denies the signs of the clause just before it, when that clause is a checklist item (a
        word like "checked" or "any", or the sign right before the mark). Said inside a clause it is left to the
        negation over the same words ("there is none"): see _answers."""
        words, start = self.tokens.words, trigger.start
        if self.tokens.ends_with_question(start):  # "lip is white, nothing?" asks
            return
        clause, clauses = self.tokens.clause[start - 2], self.tokens.clause
        items = [m for m in self.mentions if clauses[m.start] == clause and m.end < start]
        checklist = any(m.end == start - 1 for m in items) or any(
            clauses[i] == clause and words[i] in self.words.check_word for i in range(start - 1))
        if checklist:
            self._flag(items, Flag.ABSENT)

    def _on_negation_post(self, trigger: Match) -> None:
        if not self.tokens.ends_with_question(trigger.start):  # "pale lip, is this normal?" denies nothing
            self._flag(self._negated_before(self._answer(trigger), POST_NEGATION_WINDOW), Flag.ABSENT)

    def _answer(self, trigger: Match) -> int:
        """ "checked for pus, none": a checklist answer after a comma still reaches back to the sign."""
        start = trigger.start
        return start - 1 if start > 1 and self.tokens.words[start - 1] == COMMA else start

    def _on_gone_if_negated(self, trigger: Match) -> None:
        found = self._negated_before(trigger.start, NEGATION_WINDOW)
        self._flag([m for m in found if m.flags & Flag.ABSENT], Flag.GONE)

    def _on_recovered(self, trigger: Match) -> None:
        if self.tokens.ends_with_question(trigger.start):  # "is it back to normal?" asks, it does not tell
            return
        self._flag_had(self._negated_before(trigger.start, RECOVERY_WINDOW))
        if self._speaks_of_nothing_else(trigger):
            self._flag_had(self._past_signs_before(trigger))

    def _on_passed(self, trigger: Match) -> None:
        clause = self.tokens.clause[trigger.start]
        if clause in self._past_clauses and clause not in self._persist_clauses:
            self._flag_had(self._in_clause(clause))

    def _on_passed_brief(self, trigger: Match) -> None:
        clause = self.tokens.clause[trigger.start]
        if clause not in self._persist_clauses:
            self._flag_had(self._in_clause(clause))

    @staticmethod
    def _flag_had(mentions: Iterable[Mention]) -> None:
        """The sign was there and has gone; a sign denied outright ("no white or blue, looks normal") was
        never there, so it cannot have passed."""
        for mention in mentions:
            if not mention.flags & Flag.ABSENT:
                mention.flags |= Flag.GONE

    def _on_hypothetical(self, trigger: Match) -> None:
        found = self._until_new_statement(self._clause_after(trigger.end, HYPOTHETICAL_WINDOW))
        if found:
            found += self._chain(found[-1:], forward=True)
        self._flag(found, Flag.HYPOTHETICAL)

    def _until_new_statement(self, mentions: list[Mention]) -> list[Mention]:
        """After its first sign, a hypothetical ends where the patient speaks of herself again: "what if I
        see white patches my lip has gone white" (no full stop) reports the second one."""
        if not mentions:
            return mentions
        words, first_person = self.tokens.words, self.words.first_person
        for index in range(mentions[0].end, mentions[-1].start):
            if words[index] in first_person:
                return [m for m in mentions if m.start < index]
        return mentions

    def _on_third_party(self, trigger: Match) -> None:
        start = trigger.end
        if start < len(self.tokens) and self.tokens.words[start] in self.words.first_person:
            start += 1  # "bapak aku sakit flu": "aku" makes the father the patient's, it is not her speaking
        self._flag(self._until_first_person(start), Flag.THIRD_PARTY)

    def _on_proxy(self, trigger: Match) -> None:
        """Handled in apply_context: it only switches the third-party triggers off."""

    def _on_proxy_for(self, trigger: Match) -> None:
        """Handled in apply_context: it switches off the third-party triggers that name the patient."""

    def _on_mentioned(self, trigger: Match) -> None:
        """ "the nurse went through lumps, infection, blindness": risks named, not signs had; the list ends
        where the patient speaks of herself again ("...scared me a bit. just a small bruise")."""
        self._flag(self._until_first_person(trigger.end, stop=self._mention_stops, risks=True), Flag.HYPOTHETICAL)

    def _on_negation_list(self, trigger: Match) -> None:
        """ "At no point has anything looked pale, blotchy or bluish": the whole list after the cue is denied,
        commas and all, up to the end of the sentence, a "but", a "just" or the patient's next statement."""
        words, size, stops = self.tokens.words, len(self.tokens), self.words.first_person
        end = trigger.end
        while end < min(size, trigger.end + LIST_WINDOW):
            word = words[end]
            if word in _SENTENCE_ENDS or word in self.words.clause_break or word in self.words.scope_stop \
                    or word in stops:
                break
            end += 1
        self._flag([m for m in self.mentions if trigger.end <= m.start < end], Flag.ABSENT)

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
        """Signs told as one list with `first`: "white or grey", "fever, chills or pus". A list is joined by
        "or", and by commas that an "or" follows; after a bare comma comes a separate statement ("no fever,
        chills all night" reports chills)."""
        groups, links = [first], []
        edge = max(m.end for m in first) if forward else min(m.start for m in first)
        while True:
            link, position = self._link_words(edge, forward)
            group = (self.starting if forward else self.ending).get(position)
            if not group or not self._joins(link, groups[-1], group):
                break
            groups.append(group)
            links.append(link)
            edge = max(m.end for m in group) if forward else min(m.start for m in group)
        if not forward:  # reading order from here on; the trigger is then after the last group
            groups.reverse()
            links.reverse()
        bare = [index for index, link in enumerate(links) if self._bare_comma(link, links[index + 1:])]
        if bare:
            groups = groups[:bare[0] + 1] if forward else groups[bare[-1] + 1:]
        return [mention for group in groups for mention in group]

    def _joins(self, link: list[str], before: list[Mention], after: list[Mention]) -> bool:
        """ "or" and commas join a list; nothing at all joins stacked words of one kind ("no blotchy purple
        patches"), not two kinds of sign ("no bruising, blurry vision" without the comma)."""
        if any(word == COMMA or word in self.words.or_words for word in link):
            return True
        return not link and {m.sign.group for m in before} == {m.sign.group for m in after}

    def _link_words(self, edge: int, forward: bool) -> tuple[list[str], int]:
        """The list words next to a sign (in reading order) and the position just past them."""
        position, link = edge, []
        while self._is_link_at(position, forward):
            link.append(self.tokens.words[position if forward else position - 1])
            position += 1 if forward else -1
        return (link if forward else link[::-1]), position

    def _bare_comma(self, link: list[str], later: list[list[str]]) -> bool:
        """A comma with no "or" after it in the list ("fever, chills" rather than "fever, chills or pus")."""
        if COMMA not in link:
            return False
        after_comma = link[len(link) - link[::-1].index(COMMA):]
        return not any(word in self.words.or_words for word in after_comma + [w for words in later for w in words])

    def _is_link_at(self, position: int, forward: bool) -> bool:
        index = position if forward else position - 1
        if not 0 <= index < len(self.tokens) or (position in (self.starting if forward else self.ending)):
            return False
        word = self.tokens.words[index]
        return word == COMMA or word in self.words.list_link or word in self.words.or_words

    def _clause_after(self, index: int, window: int) -> list[Mention]:
        if index >= len(self.tokens) or self.tokens.words[index] in PUNCTUATION:
            return []
        clause, clauses = self.tokens.clause[index], self.tokens.clause
        return [m for m in self.mentions if index <= m.start < index + window and clauses[m.start] == clause]

    def _until_first_person(self, index: int, stop: frozenset[str] = frozenset(), risks: bool = False) -> list[Mention]:
        """Signs from `index` until the patient speaks of herself again. A list of `risks` named (in a post, by the
        nurse) ends earlier too: at a word like "now", "just" or "because" ("watched a video on blindness and now the
        vision in my eye is blurry"), and where the patient's own statement starts after a comma or a "the"/"and":
        "...about filler and the lip went white", "read about blindness, the vision went blurry", "..., bibir jadi ungu"."""
        words, size = self.tokens.words, len(self.tokens)
        end = index
        while end < min(size, index + THIRD_PARTY_WINDOW):
            word = words[end]
            if word in stop:
                break
            if risks and end > index and word in self._statement_start and words[end - 1] in self._after_list:
                break
            if word == "ku" and end > index:  # "ngomongku" was split: the word before is the patient's own
                end -= 1
                break
            if word in _SENTENCE_ENDS or word in self.words.first_person or word in self.words.clause_break:
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
        # "bigger and warm again, though it had gone down yesterday": the recovery is what came before the
        # worsening told with the signs, it does not undo them
        worse = {tokens.clause[m.start] for m in self.mentions if m.sign.group == "worsening"}
        return [m for m in self.mentions
                if m.end <= trigger.start and sentence - 1 <= tokens.sentence[m.start] <= sentence
                and tokens.clause[m.start] in self._past_clauses
                and tokens.clause[m.start] not in self._persist_clauses | worse]

    @staticmethod
    def _flag(mentions: Iterable[Mention], flag: int) -> None:
        for mention in mentions:
            mention.flags |= flag

    # --- harmless explanations and bruises ---------------------------------------------------------------
    def apply_harmless(self, harmless: list[Match]) -> None:
        """ "The white patch was my concealer" cancels the colour; "might just be the light?" does not, nor
        does a simile ("like a line drawn in red marker" describes the streak). An eye explanation ("I'd just
        put drops in") cancels only an eye sign, and only one said to have gone: a blur that stays is an
        emergency whatever the patient thinks caused it."""
        last_end = -1
        for match in sorted(harmless, key=_longest_first):
            if match.start < last_end:
                continue  # the same explanation found again, or a shorter cue inside it
            kind = match.entry.kind
            if _overlaps_any(match.start, match.end, [m for m in self._explainable(kind) if not m.wide]):
                continue  # "is white from the concealer" holds the sign: "from the concealer" inside it may explain
            last_end = match.end
            if self._hedged(match) or self._simile(match) or self._denied_cause(match):
                continue
            target = self._explained_by(match, kind)
            if target is None:
                continue
            if kind != "harmless":
                # A wide frame and a phrase inside it name one sign ("eyes were blurry", "blurry"): explain both.
                for mention in self._explainable(kind):
                    if mention.start < target.end and target.start < mention.end and self._over(mention, kind):
                        mention.flags |= Flag.EXPLAINED
                continue
            # Colours named before the cue in the same clause go with it ("the white and blue bits were my
            # marker"); a colour told after it is another statement ("...was my concealer, lip is blue").
            clause = self.tokens.clause[target.start]
            explained = [m for m in self._explainable(kind)
                         if self.tokens.clause[m.start] == clause and m.end <= match.start] + [target]
            if self._another_sign(explained, match):
                continue
            self._flag(explained, Flag.EXPLAINED)

    def _another_sign(self, explained: list[Mention], cause: Match) -> bool:
        """ "blue because I was eating blueberries" is the food; "...and it's cold and throbbing" is not explained by
        it: a colour cause stands only when no pain, cold or other sign of concern is told with the colour. Cold
        itself is explained only by a cold cause ("white and cold from the ice pack")."""
        clauses = {self.tokens.clause[m.start] for m in explained} | {self.tokens.clause[cause.start]}
        cold_cause = not self.words.cold_cause.isdisjoint(self.tokens.words[cause.start:cause.end])
        for mention in self.mentions:
            if mention.flags & (DROPPED | Flag.ABSENT) or mention.sign.group in _HARMLESS_GROUPS and (
                    mention.sign.id not in _PAIN or self.tokens.clause[mention.start] not in clauses):
                continue  # "...was my lipstick, still a bit tender": soreness told apart is the treatment's
            if mention.sign.id == "cold_skin" and cold_cause:
                continue
            if mention in explained and mention.sign.id != "cold_skin":
                continue
            return True
        return False

    def _over(self, mention: Mention, kind: str) -> bool:
        """An eye cause explains only a vision change said to have gone; nerves explain a speech sign gone or told
        only in the past tense ("words were jumbled in the consult because I was nervous")."""
        if mention.flags & Flag.GONE:
            return True
        clause = self.tokens.clause[mention.start]
        return kind == "harmless_nerves" and clause in self._past_clauses and clause not in self._persist_clauses

    def _explainable(self, kind: str) -> list[Mention]:
        return [m for m in self.mentions if m.sign.explainable and m.sign.explained_by == kind
                and not m.flags & DROPPED]

    def _hedged(self, match: Match) -> bool:
        """A cue in a clause closed by a question mark asks ("could it be the light?"); a question in a later
        clause does not hedge it ("turned out it was my lip tint, how long does the swelling last?")."""
        words = self.tokens.words
        for index in range(match.end, len(words)):
            if words[index] in PUNCTUATION:
                if words[index] == QUESTION:
                    return True
                break
        sentence = self.tokens.sentence[match.start]
        return any(self.tokens.sentence[start] == sentence for start in self.cues.starts("hedge"))

    def _denied_cause(self, match: Match) -> bool:
        """ "blue in real life too, not just the photo", "bukan karena lampu": the cause is ruled out, not given."""
        words, denials = self.tokens.words, self.words.context_denial
        return any(words[i] in denials for i in range(max(0, match.start - 2), match.start))

    def _simile(self, match: Match) -> bool:
        """ "kayak digaris pake spidol merah", "like someone drew on it with a pen": a comparison, not a cause."""
        words, similes, clause = self.tokens.words, self.words.simile, self.tokens.clause[match.start]
        return any(words[i] in similes and self.tokens.clause[i] == clause
                   for i in range(max(0, match.start - 3), match.end))

    def _explained_by(self, match: Match, kind: str) -> Mention | None:
        """The sign the explanation is about: the nearest one told before it in the sentence, else the
        first after it ("turns out it was my concealer that made it look white")."""
        sentence = self.tokens.sentence[match.start]
        same = [m for m in self.mentions if m.sign.explainable and m.sign.explained_by == kind
                and self.tokens.sentence[m.start] == sentence]
        before = [m for m in same if m.end <= match.start]
        if before:
            return before[-1] if not before[-1].flags & DROPPED else None
        after = [m for m in same if m.start >= match.end and not m.flags & DROPPED]
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
        start, end = min(colour.end, bruise.end), max(colour.start, bruise.start)  # the words between them
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
