"""Loads the triage lexicons (data a clinician can edit) once, validates them and builds the phrase matcher.

`signs.yaml` says what each sign means (level, group, label, rules); one file per language (`en.yaml`,
`id.yaml`) says how patients write it, plus the cue words for negation, hypotheticals, third parties and
the rest. Both languages are always loaded together: replies mix them ("kak my lip kok jadi pucat").
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from aftercare.triage.levels import TriageLevel
from aftercare.triage.matcher import Entry, PhraseMatcher
from aftercare.triage.phrases import PhraseCompiler, PhraseError
from aftercare.triage.text import Tokenizer, fold

LEXICON_DIR = Path(__file__).parent / "lexicons"
LANGUAGES: tuple[str, ...] = ("en", "id")
# Frames built from both languages' words at once (patients mix them: "my eye kok burem"), loaded like a language.
SHARED: tuple[str, ...] = ("faculties",)

TRIGGER_KINDS = frozenset({
    "negation",  # "no", "nothing", "gak": the sign is absent
    "negation_gone",  # "no longer", "udah gak": the sign was there and has gone
    "negation_both",  # "ga ada" works before or after the sign: "ga ada nanah", "nanahnya ga ada"
    "negation_post",  # "... is fine", "... free": absent, said after the sign
    # "checked for pus like you said: none", "demam? ga ada": an answer on its own denies the checklist item before it
    "negation_answer",
    "gone_if_negated",  # "anymore", "lagi": turns a negated sign into a sign that has gone
    "recovered",  # "went away", "back to normal", "udah normal lagi"
    "passed",  # "for an hour": gone again, when the clause is in the past tense
    "passed_brief",  # "briefly", "sempet", "sebentar": gone again by the meaning of the word
    "pseudo",  # looks like a cue but is not: "not sure", "hasn't gone away", "gak ilang"
    "hypothetical",  # "what if", "kalau nanti", "signs to watch for"
    "third_party",  # "my friend", "temen aku"
    "proxy",  # "I'm her husband", "saya suaminya": a relative reports the patient's signs; no third party then
    "negation_list",  # "none of the things on your list", "at no point": denies a whole list of signs after it
    "mentioned",  # "the nurse warned me about", "googled", "efek samping kayak": signs named as risks, not had
    # "texting for my mum", "my husband had filler today", "suami saya td filler": the relative named is the
    # patient, so third-party cues naming that relative do not apply (another relative's illness still does).
    "proxy_for",
})
# Harmless explanations come in kinds: "harmless" (makeup, light, a photo filter) explains a colour; "harmless_eye"
# (eye drops, a contact lens, just woke up) explains only an eye sign, and only one said to be gone.
# "harmless_nerves" (nerves, a numbing injection, tiredness) explains a speech or grip sign, and only one told as past
# or gone: "words were jumbled in the consult because I was nervous" (CLINICAL-NOTES.md: a stroke sign that stays
# is an emergency whatever the patient thinks caused it).
HARMLESS_KINDS = ("harmless", "harmless_eye", "harmless_nerves")
MARK_KINDS = ("positive", "question", "question_start", *HARMLESS_KINDS, "hedge", "past", "persist", "describes",
              "unsure", "intensity")
# Classes named watch_<group> (faculties.yaml): words of a faculty that can fail in an emergency. Told of without a
# sign of that group being found, the reply is unplaced: a person reads it (CLINICAL-NOTES.md: when unsure).
WATCH_PREFIX = "watch_"
STRUCTURAL_CLASSES = ("clause_break", "scope_stop", "first_person", "list_link", "or_words", "location_prep",
                      "body_part", "opener", "context_denial", "relative", "simile", "check_word",
                      "reason", "appointment", "determiner", "writer_meta",
                      "remote_past", "companion", "mild", "nearby",
                      "norm_word", "cold_cause")
_NEGATIONS = ("negation", "negation_gone", "negation_both", "negation_answer")
_SIGN_FIELDS = {"level", "group", "label", "explainable", "explained_by", "bruise_colour", "passed_matters", "rules"}
_FRAME_FIELDS = {"sign", "parts", "losses", "gap", "order", "needs"}
_RULE_FIELDS = {"level", "context", "without", "day_at_most", "day_at_least"}


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file, the section and the entry."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A level that replaces a sign's usual level when every condition given holds."""

    level: TriageLevel
    context: str = ""
    without: str = ""
    day_at_most: int | None = None
    day_at_least: int | None = None


@dataclass(frozen=True, slots=True)
class SignInfo:
    """What a sign means, from signs.yaml."""

    id: str
    level: TriageLevel
    group: str
    label: str
    explainable: bool = False  # a harmless cause can explain it ("the white was my concealer")
    explained_by: str = "harmless"  # the kind of harmless explanation that can (HARMLESS_KINDS)
    bruise_colour: bool = False  # a bruise in the same breath explains it ("bruise, a bit blue")
    passed_matters: bool = False  # having had it, even briefly, needs a clinician ("went white for an hour")
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True, slots=True)
class Words:
    """Single-word classes the context rules work with."""

    clause_break: frozenset[str]
    scope_stop: frozenset[str]
    first_person: frozenset[str]
    list_link: frozenset[str]
    or_words: frozenset[str]
    location_prep: frozenset[str]
    body_part: frozenset[str]
    opener: frozenset[str]  # "hi", "kak", "sorry": may come before a question word that opens a sentence
    context_denial: frozenset[str]  # "no", "bukan": "no filler" names no filler
    relative: frozenset[str]  # "mum", "suami": who a proxy reply may be about
    simile: frozenset[str]  # "like", "kayak": "like a line drawn in red marker" describes, it does not explain
    determiner: frozenset[str]  # "the", "and": "...and the lip went white" is the patient's own lip
    appointment: frozenset[str]  # "review", "kontrol": "the 2 week review" names no day after treatment
    reason: frozenset[str]  # "because", "karena": the patient's own statement starts ("worried about X because...")
    check_word: frozenset[str]  # "checked", "any", "cek": a clause that is a checklist item ("checked for pus: none")
    norm_word: frozenset[str]  # "right", "normal": "not right" complains, it denies nothing
    nearby: frozenset[str]  # "under", "bawah": "under my eyes" is a place near the faculty, not the faculty
    mild: frozenset[str]  # "dikit", "bit": "dikit bgt" is very little, not very much
    companion: frozenset[str]  # "friend", "temen": someone the writer may report for, like a relative
    remote_past: frozenset[str]  # "years", "dulu": a relative's history ("mum had a stroke years ago")
    writer_meta: frozenset[str]  # "think", "rasa": after "I", a word about the writer's view, not her body
    cold_cause: frozenset[str]  # "ice", "es": a cause that explains cold skin as well as a colour


@dataclass(frozen=True, slots=True)
class Lexicon:
    matcher: PhraseMatcher
    signs: Mapping[str, SignInfo]
    groups: Mapping[str, str]
    words: Words
    positive_emoji: frozenset[str]
    numbers: Mapping[str, int]
    stop_words: frozenset[str]  # words a phrase gap cannot skip: negations and clause breaks
    # One-word cues and contexts are plain word sets, looked up only when a rule needs them (most replies never
    # ask where their past-tense words are); longer ones go through the matcher like signs.
    mark_words: Mapping[str, frozenset[str]]
    context_words: Mapping[str, frozenset[str]]
    tokenizer: Tokenizer
    # Enrollment treatment key -> the contexts it stands for, when the reply names no treatment itself.
    treatments: Mapping[str, tuple[str, ...]]
    treatment_contexts: frozenset[str]  # contexts that name a treatment: the reply's own word wins over enrollment
    watched: Mapping[str, frozenset[str]]  # sign group -> faculty words ("eye" -> eye, vision, mata, ...)


@cache
def load_lexicon() -> Lexicon:
    return load_lexicon_files(LEXICON_DIR / "signs.yaml",
                              [LEXICON_DIR / f"{name}.yaml" for name in (*LANGUAGES, *SHARED)])


def load_lexicon_files(signs_path: Path, language_paths: list[Path]) -> Lexicon:
    meta = _read(signs_path)
    groups = _mapping(signs_path.name, "groups", meta.get("groups"))
    signs = {sign_id: _sign_info(signs_path.name, sign_id, raw, groups)
             for sign_id, raw in _mapping(signs_path.name, "signs", meta.get("signs")).items()}
    languages = [(path.name, _read(path)) for path in language_paths]
    classes = _merged_classes(languages)
    numbers = {fold(str(word)): int(value)
               for _, raw in languages for word, value in (raw.get("numbers") or {}).items()}
    words = Words(**{name: frozenset(classes.get(name, ())) for name in STRUCTURAL_CLASSES})
    stop_words = frozenset(_gap_stops(languages, words))
    compiler = PhraseCompiler(classes, numbers, stop_words)
    single: dict[tuple[str, str], set[str]] = {}
    entries = [entry for where, raw in languages for entry in _entries(where, raw, compiler, signs, classes, single)]
    emoji = frozenset(str(meta.get("positive_emoji", "")).replace(" ", ""))
    treatments = _treatments(signs_path.name, meta)
    return Lexicon(matcher=PhraseMatcher(entries), signs=signs, groups=groups, words=words, positive_emoji=emoji,
                   numbers=numbers, stop_words=stop_words,
                   mark_words={kind: frozenset(single.get((kind, kind), ())) for kind in MARK_KINDS},
                   context_words={key: frozenset(found) for (kind, key), found in single.items() if kind == "context"},
                   tokenizer=Tokenizer(words.clause_break, stop_words, _emoji_words(signs_path.name, meta)),
                   treatments=treatments, treatment_contexts=frozenset(c for cs in treatments.values() for c in cs),
                   watched=_watched(signs_path.name, classes, groups))


def _watched(where: str, classes: Mapping[str, list[str]], groups: Mapping[str, str]) -> dict[str, frozenset[str]]:
    watched = {name[len(WATCH_PREFIX):]: frozenset(words) for name, words in classes.items()
               if name.startswith(WATCH_PREFIX)}
    unknown = sorted(set(watched) - set(groups))
    if unknown:
        raise LexiconError(f"{where}: classes {', '.join(WATCH_PREFIX + g for g in unknown)} name no sign group")
    return watched


def _emoji_words(where: str, meta: dict[str, Any]) -> dict[str, str]:
    raw = meta.get("emoji_words") or {}
    if not isinstance(raw, dict) or not all(isinstance(word, str) for word in raw.values()):
        raise LexiconError(f"{where}: field 'emoji_words': expected a mapping of emoji to a word")
    return {str(emoji): f" {word} " for emoji, word in raw.items()}


def _treatments(where: str, meta: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    raw = meta.get("treatments") or {}
    if not isinstance(raw, dict) or not all(isinstance(c, list) for c in raw.values()):
        raise LexiconError(f"{where}: field 'treatments': expected a mapping of treatment key to context names")
    return {str(key): tuple(str(c) for c in contexts) for key, contexts in raw.items()}


def _read(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LexiconError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(raw, dict):
        raise LexiconError(f"{path.name}: expected a mapping at the top level")
    return raw


def _mapping(where: str, field: str, raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise LexiconError(f"{where}: field '{field}': expected a non-empty mapping")
    return raw


def _phrases(where: str, raw: object) -> list[str]:
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str | int) for item in raw):
        raise LexiconError(f"{where}: expected a list of phrases")
    if any(isinstance(item, bool) for item in raw):
        raise LexiconError(f"{where}: a phrase was read as true/false: quote words like no, yes, on, off")
    return [str(item) for item in raw]


def _sign_info(where: str, sign_id: str, raw: object, groups: Mapping[str, str]) -> SignInfo:
    here = f"{where}: sign '{sign_id}'"
    if not isinstance(raw, dict) or set(raw) - _SIGN_FIELDS or not {"level", "group", "label"} <= set(raw):
        raise LexiconError(f"{here}: expected level, group and label "
                           "(optional: explainable, explained_by, bruise_colour, passed_matters, rules)")
    if raw["group"] not in groups:
        raise LexiconError(f"{here}: unknown group {raw['group']!r}")
    rules = tuple(_rule(f"{here}: rule {number}", item) for number, item in enumerate(raw.get("rules") or [], 1))
    explained_by = str(raw.get("explained_by", "harmless"))
    if explained_by not in HARMLESS_KINDS:
        raise LexiconError(f"{here}: explained_by {explained_by!r} is not one of {', '.join(HARMLESS_KINDS)}")
    return SignInfo(id=sign_id, level=_level(here, raw["level"]), group=raw["group"], label=str(raw["label"]),
                    explainable=bool(raw.get("explainable")), explained_by=explained_by,
                    bruise_colour=bool(raw.get("bruise_colour")),
                    passed_matters=bool(raw.get("passed_matters")), rules=rules)


def _rule(where: str, raw: object) -> Rule:
    if not isinstance(raw, dict) or "level" not in raw or set(raw) - _RULE_FIELDS or len(raw) < 2:
        raise LexiconError(f"{where}: expected level and at least one of context, without, day_at_most, day_at_least")
    return Rule(level=_level(where, raw["level"]), context=str(raw.get("context", "")),
                without=str(raw.get("without", "")), day_at_most=raw.get("day_at_most"),
                day_at_least=raw.get("day_at_least"))


def _level(where: str, raw: object) -> TriageLevel:
    try:
        return TriageLevel(str(raw))
    except ValueError:
        raise LexiconError(f"{where}: level {raw!r} is not one of {', '.join(TriageLevel)}") from None


def _merged_classes(languages: list[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Classes of every language merged by name, so a phrase in one language can use the other's words."""
    merged: dict[str, list[str]] = {}
    for where, raw in languages:
        for name, words in (raw.get("classes") or {}).items():
            merged.setdefault(name, []).extend(_phrases(f"{where}: class @{name}", words))
    missing = [name for name in STRUCTURAL_CLASSES if name not in merged]
    if missing:
        raise LexiconError(f"lexicons: missing classes: {', '.join(missing)}")
    return {name: [fold(word) for word in words] for name, words in merged.items()}


def _gap_stops(languages: list[tuple[str, dict[str, Any]]], words: Words) -> set[str]:
    """A gap in a phrase may not swallow a negation or a "but": "red but not spreading" is no spreading redness."""
    stops = set(words.clause_break)
    for where, raw in languages:
        for kind in _NEGATIONS:
            for phrase in _phrases(f"{where}: triggers: {kind}", (raw.get("triggers") or {}).get(kind, [])):
                if " " not in phrase.strip():  # one-word negations: "no|not|nothing", "gak|ga|nggak"
                    stops.update(fold(word) for word in phrase.split("|") if word.isalpha())
    return stops


def _single_words(phrase: str, classes: Mapping[str, list[str]]) -> set[str] | None:
    """The words of a one-token phrase made only of plain words ("good|great|@thanks"), else None."""
    if " " in phrase.strip() or any(mark in phrase for mark in "*#/[]~>$"):
        return None
    found: set[str] = set()
    for alternative in phrase.strip().split("|"):
        if alternative.startswith("@"):
            if alternative[1:] not in classes or any("*" in word for word in classes[alternative[1:]]):
                return None
            found.update(classes[alternative[1:]])
        else:
            found.add(fold(alternative))
    return found


def _entries(where: str, raw: dict[str, Any], compiler: PhraseCompiler, signs: Mapping[str, SignInfo],
             classes: Mapping[str, list[str]], single: dict[tuple[str, str], set[str]]) -> Iterator[Entry]:
    def make(section: str, phrase: str, kind: str, key: str, value: int = 0, needs: str = "", unless: str = "",
             hides: bool = True) -> Entry:
        rank = signs[key].level.rank if kind == "sign" else 0
        try:
            return Entry(kind=kind, key=key, phrase=compiler.compile(phrase), value=value, needs=needs, rank=rank,
                         unless=unless, hides=hides)
        except (PhraseError, re.error) as exc:
            raise LexiconError(f"{where}: {section}: {phrase!r}: {exc}") from exc

    for sign_id, body in (raw.get("signs") or {}).items():
        if sign_id not in signs:
            raise LexiconError(f"{where}: signs: '{sign_id}' is not defined in signs.yaml")
        yield from _sign_entries(where, sign_id, body, make)
    for number, frame in enumerate(raw.get("frames") or [], 1):
        yield from _frame_entries(f"{where}: frames: {number}", frame, signs, make)
    for kind, phrases in (raw.get("triggers") or {}).items():
        if kind not in TRIGGER_KINDS:
            raise LexiconError(f"{where}: triggers: unknown kind '{kind}'")
        for phrase in _phrases(f"{where}: triggers: {kind}", phrases):
            yield make(f"triggers: {kind}", phrase, "trigger", kind)
    for name, phrases in (raw.get("contexts") or {}).items():
        for phrase in _phrases(f"{where}: contexts: {name}", phrases):
            words = _single_words(phrase, classes)
            if words is None:
                yield make(f"contexts: {name}", phrase, "context", name)
            else:
                single.setdefault(("context", name), set()).update(words)
    yield from _timeframe_entries(where, raw.get("timeframes") or {}, make)
    for kind in MARK_KINDS:
        for phrase in _phrases(f"{where}: {kind}", raw.get(kind) or []):
            words = None if kind in (*HARMLESS_KINDS, "describes") else _single_words(phrase, classes)  # needs its span
            if words is None:
                yield make(kind, phrase, kind, kind)
            else:
                single.setdefault((kind, kind), set()).update(words)


def _sign_entries(where: str, sign_id: str, body: object, make) -> Iterator[Entry]:
    section = f"signs: {sign_id}"
    if not isinstance(body, dict):
        body = {"phrases": body}
    unknown = set(body) - {"phrases", "except", "needs", "unless"}
    if unknown:
        raise LexiconError(f"{where}: {section}: unknown fields {sorted(unknown)} (phrases, except, needs, unless)")
    for phrase in _phrases(f"{where}: {section}", body.get("phrases") or []):
        yield make(section, phrase, "sign", sign_id)
    for phrase in _phrases(f"{where}: {section}: except", body.get("except") or []):
        yield make(f"{section}: except", phrase, "except", sign_id)
    for context, phrases in (body.get("needs") or {}).items():
        for phrase in _phrases(f"{where}: {section}: needs {context}", phrases):
            yield make(f"{section}: needs {context}", phrase, "sign", sign_id, needs=context)
    for context, phrases in (body.get("unless") or {}).items():
        for phrase in _phrases(f"{where}: {section}: unless {context}", phrases):
            yield make(f"{section}: unless {context}", phrase, "sign", sign_id, unless=context)


def _frame_entries(where: str, frame: object, signs: Mapping[str, SignInfo], make) -> Iterator[Entry]:
    """A frame is a body part or faculty and a loss predicate near each other, in either order ("the left half
    of the tv is missing", "words come out jumbled", "minum tumpah dari sudut bibir"): every part phrase is
    paired with every loss phrase, so a new word in either list catches every paraphrase built with it."""
    if not isinstance(frame, dict) or set(frame) - _FRAME_FIELDS or not {"sign", "parts", "losses"} <= set(frame):
        raise LexiconError(f"{where}: expected sign, parts and losses (optional: gap, order, needs)")
    sign_id, gap, order = str(frame["sign"]), str(frame.get("gap", "~4")), str(frame.get("order", "both"))
    if sign_id not in signs:
        raise LexiconError(f"{where}: '{sign_id}' is not defined in signs.yaml")
    if order not in ("both", "part_first", "loss_first") or not gap.startswith("~"):
        raise LexiconError(f"{where}: order must be both, part_first or loss_first; gap a ~N or ~~N gap")
    needs = str(frame.get("needs", ""))
    hides = "=" not in gap  # a scope gap reaches across the clause: see Entry.hides
    for part in _phrases(f"{where}: parts", _flat(frame["parts"])):
        for loss in _phrases(f"{where}: losses", _flat(frame["losses"])):
            if order != "loss_first":
                yield make(f"frame {sign_id}", f"{part} {gap} {loss}", "sign", sign_id, needs=needs, hides=hides)
            if order != "part_first":
                yield make(f"frame {sign_id}", f"{loss} {gap} {part}", "sign", sign_id, needs=needs, hides=hides)


def _flat(raw: object) -> object:
    """A frame list may hold a shared YAML list (`losses: ["@limb_weak", *limb_cant]`): its phrases count one by one."""
    if not isinstance(raw, list):
        return raw
    return [item for entry in raw for item in (entry if isinstance(entry, list) else [entry])]


def _timeframe_entries(where: str, raw: dict[str, Any], make) -> Iterator[Entry]:
    for kind in ("scale", "fixed"):
        for days, phrases in (raw.get(kind) or {}).items():
            for phrase in _phrases(f"{where}: timeframes: {kind}: {days}", phrases):
                yield make(f"timeframes: {kind}", phrase, "timeframe", kind, value=int(days))
