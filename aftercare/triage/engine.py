"""The triage function: reply text in, level with the signs that decided it out. Pure: no I/O after the
lexicons are loaded (once, cached)."""

from __future__ import annotations

from collections import defaultdict
from functools import partial
from typing import NamedTuple

from aftercare.triage.context import Cues, Flag, Mention, apply_context
from aftercare.triage.explain import explain_quiet, explain_signs
from aftercare.triage.levels import RANK, TriageLevel, TriageResult
from aftercare.triage.lexicon import Lexicon, SignInfo, load_lexicon
from aftercare.triage.matcher import Match
from aftercare.triage.text import COMMA, QUESTION, STOP, Tokens
from aftercare.triage.timeline import estimate_day

PASSED_PREFIX = "passed_"
_SENTENCE_ENDS = frozenset({STOP, QUESTION})
Found = defaultdict[str, list[Match]]  # by entry kind; a kind with nothing found reads as an empty list
# A reply whose only signs are denied ("no fever") or explained away ("the white was my concealer") is ok.
_NOTHING_WRONG = frozenset({Flag.ABSENT, Flag.EXPLAINED, Flag.ABSENT | Flag.EXPLAINED})


class Finding(NamedTuple):
    """A sign the patient has (or had, for a passed one), at the level it decides."""

    id: str
    sign: SignInfo
    level: TriageLevel
    position: int
    passed: bool = False


def triage(text: str, lang: str = "en") -> TriageResult:
    """Triage one patient reply.

    `lang` ("en", "id", anything else) is accepted for the callers' sake, but both lexicons always apply:
    patients mix languages in one message ("kak my lip kok jadi pucat"), and missing an emergency because
    the patient's profile says "en" would be the worst possible bug.
    """
    lexicon = load_lexicon()
    tokens = lexicon.tokenizer.tokenize(text)
    found = lexicon.matcher.find(tokens)
    mentions = _mentions(found, tokens, lexicon)
    cues = Cues(tokens, lexicon, found)
    if mentions:
        apply_context(tokens, lexicon, mentions, cues)
        findings = _findings(mentions, tokens, found, lexicon)
        if findings:
            ordered = sorted(findings, key=_severity_then_position)
            level = ordered[0].level
            return TriageResult(level, list(dict.fromkeys(f.id for f in ordered)),
                                partial(explain_signs, level, ordered, lexicon))
    return _quiet(text, tokens, found, cues, mentions, lexicon)


def _severity_then_position(finding: Finding) -> tuple[int, int]:
    return -RANK[finding.level], finding.position


def _mentions(found: Found, tokens: Tokens, lexicon: Lexicon) -> list[Mention]:
    """Sign matches that stand: their context is there, no exception covers them, no longer sign holds them."""
    matches = found["sign"]
    if not matches:
        return []
    if found["except"] or any(m.entry.needs for m in matches):
        matches = [m for m in matches if _stands(m, found, tokens, lexicon)]
    if len(matches) > 1 and any(later.start < earlier.end for earlier, later in zip(matches, matches[1:], strict=False)):
        matches = [m for m in matches if not _held_by_longer(m, matches)]  # only overlapping phrases can hide
    signs = lexicon.signs
    return [Mention(signs[m.entry.key], m.start, m.end) for m in matches]


def _stands(match: Match, found: Found, tokens: Tokens, lexicon: Lexicon) -> bool:
    entry = match.entry
    if entry.needs and not _sentence_has(entry.needs, tokens.sentence[match.start], found, tokens, lexicon):
        return False
    return not any(veto.entry.key == entry.key and veto.start <= match.start and match.end <= veto.end
                   for veto in found["except"])


def _sentence_has(context: str, sentence: int, found: Found, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "blurry" is a vision sign when the same sentence speaks of an eye or of seeing."""
    if any(c.entry.key == context and tokens.sentence[c.start] == sentence for c in found["context"]):
        return True
    words = lexicon.context_words.get(context, frozenset())
    return any(number == sentence and word in words for word, number in zip(tokens.words, tokens.sentence, strict=True))


def _held_by_longer(match: Match, matches: list[Match]) -> bool:
    """ "swollen tongue" is one sign, not swelling too; a longer phrase only hides signs no more serious
    than its own, so "white stuff" (discharge) cannot hide an emergency unless the lexicon says so."""
    rank, length = match.entry.rank, match.end - match.start
    for other in matches:
        if other is match or not (other.start <= match.start and match.end <= other.end):
            continue
        other_length = other.end - other.start
        if other_length > length and other.entry.rank >= rank:
            return True
        if other_length == length and other.entry.key == match.entry.key and id(other) < id(match):
            return True
    return False


def _findings(mentions: list[Mention], tokens: Tokens, found: Found, lexicon: Lexicon) -> list[Finding]:
    findings: list[Finding] = []
    setting: tuple[set[str], int | None] | None = None
    for mention in mentions:
        sign, level = mention.sign, mention.sign.level
        if sign.rules:
            setting = setting or _setting(tokens, found, lexicon)
            level = level_of(sign, *setting)
        if mention.present:
            findings.append(Finding(sign.id, sign, level, mention.start))
        elif mention.passed and sign.passed_matters and level is TriageLevel.EMERGENCY:
            # An occlusion sign that came and went still needs a clinician's eyes today.
            findings.append(Finding(PASSED_PREFIX + sign.id, sign, TriageLevel.URGENT, mention.start, passed=True))
    return findings


def _setting(tokens: Tokens, found: Found, lexicon: Lexicon) -> tuple[set[str], int | None]:
    """The treatments the reply names ("filler", "laser") and the day after treatment it speaks of; only
    signs with rules ask, so most replies never work it out."""
    contexts = {match.entry.key for match in found["context"]}
    contexts.update(name for name, words in lexicon.context_words.items() if not words.isdisjoint(tokens.present))
    return contexts, estimate_day(found["timeframe"], tokens, lexicon.numbers)


def level_of(sign: SignInfo, contexts: set[str], day: int | None) -> TriageLevel:
    """The sign's level after its rules: the first rule whose conditions all hold replaces the usual one."""
    for rule in sign.rules:
        if rule.context and rule.context not in contexts:
            continue
        if rule.without and rule.without in contexts:
            continue
        if rule.day_at_most is not None and (day is None or day > rule.day_at_most):
            continue
        if rule.day_at_least is not None and (day is None or day < rule.day_at_least):
            continue
        return rule.level
    return sign.level


def _quiet(text: str, tokens: Tokens, found: Found, cues: Cues, mentions: list[Mention],
           lexicon: Lexicon) -> TriageResult:
    """No sign stands: a question is routine; thanks, a thumbs-up or only denied signs is ok; anything else
    is routine, so a person reads what the lexicon could not place."""
    if _asks(tokens, found, cues, lexicon):
        level, reason = TriageLevel.ROUTINE, "question"
    elif cues.starts("positive") or not lexicon.positive_emoji.isdisjoint(text):
        level, reason = TriageLevel.OK, "positive"
    elif any(m.flags in _NOTHING_WRONG for m in mentions):
        level, reason = TriageLevel.OK, "denied"
    elif not text.strip():
        level, reason = TriageLevel.OK, "empty"
    else:
        level, reason = TriageLevel.ROUTINE, "unplaced"
    return TriageResult(level, [], explain_quiet(reason))


def _asks(tokens: Tokens, found: Found, cues: Cues, lexicon: Lexicon) -> bool:
    if QUESTION in tokens.present or cues.starts("question"):
        return True
    return any(_opens_sentence(start, tokens, lexicon) for start in cues.starts("question_start"))


def _opens_sentence(index: int, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "when can I go to the gym" asks; "hi kak, kapan boleh olahraga" too; "sore when I touch it" and
    "thanks, will do" do not."""
    words, openers = tokens.words, lexicon.words.opener
    while index > 0 and (words[index - 1] in openers or words[index - 1] == COMMA):
        index -= 1
    return index == 0 or words[index - 1] in _SENTENCE_ENDS
