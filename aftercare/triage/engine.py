"""The triage function: reply text in, level with the signs that decided it out. Pure: no I/O after the
lexicons are loaded (once, cached)."""

from __future__ import annotations

from functools import partial

from aftercare.triage.context import Cues, apply_context
from aftercare.triage.explain import explain_quiet, explain_signs
from aftercare.triage.levels import RANK, TriageLevel, TriageResult
from aftercare.triage.lexicon import Lexicon, load_lexicon
from aftercare.triage.mentions import NOTHING_WRONG, Mention, select_mentions
from aftercare.triage.rules import Finding, findings
from aftercare.triage.setting import NO_ENROLLMENT, Enrollment
from aftercare.triage.text import COMMA, PUNCTUATION, QUESTION, STOP, Tokens

_SENTENCE_ENDS = frozenset({STOP, QUESTION})
# How near a sign an intensity word must be: "really badly burning" (before), "stings a lot" (after).
_INTENSITY_BEFORE, _INTENSITY_AFTER = 2, 3
# Cues that put a faculty word in someone else's mouth or in a risk: no faculty of the patient's own.
_OTHER_VOICES = frozenset({"third_party", "hypothetical", "mentioned", "negation_list"})
_WHAT_ABOUT = frozenset({"what", "about", "as", "for", "how", "kalo", "kalau", "klo", "gimana"})


def triage(text: str, lang: str = "en", *, treatment: str | None = None,
           days_since: float | None = None) -> TriageResult:
    """Triage one patient reply.

    `lang` ("en", "id", anything else) is accepted for the callers' sake, but both lexicons always apply:
    patients mix languages in one message ("kak my lip kok jadi pucat"), and missing an emergency because
    the patient's profile says "en" would be the worst possible bug.

    `treatment` (an enrollment key: "dermal-filler", "skin-booster", "mesotherapy", "chemical-peel",
    "microneedling", "laser-resurfacing") and `days_since` (days since that treatment) fill what the reply
    leaves out; what the reply itself says ("3 weeks after", "abis IPL") wins. Unknown keys are ignored.
    """
    lexicon = load_lexicon()
    tokens = lexicon.tokenizer.tokenize(text)
    found = lexicon.matcher.find(tokens)
    mentions = select_mentions(found, tokens, lexicon)
    cues = Cues(tokens, lexicon, found)
    if mentions:
        apply_context(tokens, lexicon, mentions, cues)
        enrollment = NO_ENROLLMENT if treatment is None and days_since is None else Enrollment(treatment, days_since)
        present = findings(mentions, tokens, found, lexicon, enrollment)
        if present:
            ordered = sorted(present, key=_severity_then_position)
            level = ordered[0].level
            basis = "unplaced" if level is TriageLevel.ROUTINE and (
                _unplaced_description(found, mentions) or _intense(mentions, tokens, cues, lexicon)
                or _unplaced_faculty(tokens, cues, lexicon, mentions)) else "signs"
            return TriageResult(level, list(dict.fromkeys(f.id for f in ordered)),
                                partial(explain_signs, level, ordered, lexicon), basis)
    return _quiet(text, tokens, cues, mentions, lexicon, found)


def _unplaced_description(found, mentions: list[Mention]) -> bool:
    """A comparison or look ("like putty", "kayak lilin", "looks weird") that no sign phrase took up: the
    reply describes something the lexicon could not place, so an automatic "this is normal" would claim
    a certainty the triage lacks. A comparison that is praise ("looks like a new person") is placed."""
    for cue in found["describes"]:
        if not _overlaps(cue, mentions) and not _overlaps(cue, found["positive"]) \
                and not any(idiom.start <= cue.start and cue.end <= idiom.end for idiom in found["except"]):
            return True  # "white as a ghost when I saw the bill": the idiom places its comparison
    return False


def _unsure(tokens: Tokens, cues: Cues, lexicon: Lexicon, found) -> bool:
    """Uncertainty ("not really sure", "maybe?", "gatau kak") with no question of its own beside it: unplaced,
    so a person reads it; "not sure, can I wash my face?" still asks."""
    starts = cues.starts("unsure")
    if not starts:
        return False
    unsure = set(starts) | {i for match in found["unsure"] for i in range(match.start, match.end)}
    if any(not unsure.intersection(range(q.start, q.end)) for q in found["question"]):
        return False
    return not any(_opens_sentence(start, tokens, lexicon) and start not in unsure
                   for start in cues.starts("question_start"))


def _intense(mentions: list[Mention], tokens: Tokens, cues: Cues, lexicon: Lexicon) -> bool:
    """ "stings a lot", "perih bgt", "bengkak parah": a mild sign told as severe is not the mild sign, so no
    automatic "this is usually normal"; "dikit bgt" (very little) is mild still."""
    starts = cues.starts("intensity")
    if not starts:
        return False
    words, clause, mild = tokens.words, tokens.clause, lexicon.words.mild
    for mention in mentions:
        if not mention.present:
            continue
        for index in starts:
            near = mention.start - _INTENSITY_BEFORE <= index < mention.end + _INTENSITY_AFTER
            if near and clause[index] == clause[mention.start] and not (index and words[index - 1] in mild):
                return True
    return False


def _unplaced_faculty(tokens: Tokens, cues: Cues, lexicon: Lexicon, mentions: list[Mention]) -> bool:
    """A faculty that can fail in an emergency (an eye, sight, speech, breath, a colour) told of in the patient's own
    clause, not denied nor praised nor someone else's, with no sign of its group found: "my eye though... its all
    foggy" is something the lexicon could not place, never "usually normal" (CLINICAL-NOTES.md: when unsure, a
    person reads it). A sign of the group named at all, even denied or explained, places the faculty."""
    watched = [(group, words) for group, words in lexicon.watched.items() if not words.isdisjoint(tokens.present)]
    if not watched:
        return False
    had = {mention.sign.group for mention in mentions}
    words = tokens.words
    for group, faculty in watched:
        if group in had:
            continue
        for index, word in enumerate(words):
            if word in faculty and not _beside(index, tokens, lexicon) and not _in_idiom(index, cues) \
                    and _own_open_clause(index, tokens, cues, lexicon):
                return True
    return False


def _in_idiom(index: int, cues: Cues) -> bool:
    """ "pucet liat tagihan": "liat" is part of the idiom (seeing the bill), not sight told of."""
    return any(idiom.start <= index < idiom.end for idiom in cues.idioms)


def _beside(index: int, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "under my eyes", "bawah mata": a place near the faculty, told of as skin."""
    return any(word in lexicon.words.nearby for word in tokens.words[max(0, index - 2):index])


def _own_open_clause(index: int, tokens: Tokens, cues: Cues, lexicon: Lexicon) -> bool:
    """The clause holding `index` is the patient's own (no other person's cue, risk or hypothetical in its
    sentence) and tells of no denial or praise."""
    clause, sentence, words = tokens.clause[index], tokens.sentence[index], tokens.words
    in_clause = [i for i in range(len(words)) if tokens.clause[i] == clause]
    negations = lexicon.stop_words - lexicon.words.clause_break
    norm = lexicon.words.norm_word
    if any(words[i] in negations and not (i + 1 < len(words) and words[i + 1] in norm) for i in in_clause):
        return False
    if any(tokens.clause[i] == clause and not (i and words[i - 1] in negations) for i in cues.starts("positive")):
        return False  # praise ("eyes look great"); "not ok" is none
    for trigger in cues.triggers:
        if trigger.entry.key in _OTHER_VOICES and tokens.sentence[trigger.start] == sentence:
            return False
    # "the vision thing was my reading glasses being filthy": a cause told places it
    return not any(tokens.sentence[cause.start] == sentence for cause in cues.harmless)


def _overlaps(span, others) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)


def _severity_then_position(finding: Finding) -> tuple[int, int]:
    return -RANK[finding.level], finding.position


def _quiet(text: str, tokens: Tokens, cues: Cues, mentions: list[Mention], lexicon: Lexicon,
           found) -> TriageResult:
    """No sign stands: a question is routine; thanks, a thumbs-up or only denied signs is ok; anything else
    is routine, so a person reads what the lexicon could not place (a description no sign phrase took up
    too: "lip looks like putty lol thanks" is not ok)."""
    if _unsure(tokens, cues, lexicon, found):
        level, reason = TriageLevel.ROUTINE, "unplaced"  # "not really sure", "maybe?", "gatau kak": never ok
    elif _asks(tokens, cues, lexicon, found):
        level, reason = TriageLevel.ROUTINE, "question"
    elif found["describes"] and _unplaced_description(found, [m for m in mentions if m.present]):
        level, reason = TriageLevel.ROUTINE, "unplaced"
    elif _unplaced_faculty(tokens, cues, lexicon, mentions):
        level, reason = TriageLevel.ROUTINE, "unplaced"
    elif cues.starts("positive") or not lexicon.positive_emoji.isdisjoint(text):
        level, reason = TriageLevel.OK, "positive"
    elif any(m.flags in NOTHING_WRONG for m in mentions):
        level, reason = TriageLevel.OK, "denied"
    elif not text.strip():
        level, reason = TriageLevel.OK, "empty"
    else:
        level, reason = TriageLevel.ROUTINE, "unplaced"
    return TriageResult(level, [], explain_quiet(reason), reason)


def _asks(tokens: Tokens, cues: Cues, lexicon: Lexicon, found) -> bool:
    """A question mark, a question phrase, or a question word opening a sentence; not a rhetorical "but me?" nor
    a question word inside thanks ("makasih udah nanya", "semua normal gak ada keluhan")."""
    if QUESTION in tokens.present and not all(_rhetorical(i, tokens, lexicon)
                                              for i, word in enumerate(tokens.words) if word == QUESTION):
        return True
    praise = found["positive"]
    if any(not _overlaps(cue, praise) for cue in found["question"]):
        return True
    if any(tokens.words[start] in lexicon.mark_words["question"] and not _inside(start, praise)
           for start in cues.starts("question")):
        return True
    return any(_opens_sentence(start, tokens, lexicon) and not _inside(start, praise)
               for start in cues.starts("question_start"))


def _inside(index: int, spans) -> bool:
    return any(span.start <= index < span.end for span in spans)


def _rhetorical(mark: int, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "a friend reacted, but me? not a thing": a question made only of the patient herself."""
    words, own = tokens.words, lexicon.words.first_person | lexicon.words.clause_break | lexicon.words.opener
    start = mark
    while start > 0 and words[start - 1] not in PUNCTUATION:
        start -= 1
    return start < mark and all(word in own or word in _WHAT_ABOUT for word in words[start:mark]) \
        and any(word in lexicon.words.first_person for word in words[start:mark])


def _opens_sentence(index: int, tokens: Tokens, lexicon: Lexicon) -> bool:
    """ "when can I go to the gym" asks; "hi kak, kapan boleh olahraga" too; "sore when I touch it" and
    "thanks, will do" do not."""
    words, openers = tokens.words, lexicon.words.opener
    while index > 0 and (words[index - 1] in openers or words[index - 1] == COMMA):
        index -= 1
    return index == 0 or words[index - 1] in _SENTENCE_ENDS
