"""Which day after treatment a reply speaks of: "day 4", "3 wks after meso", "hari ke-3", "tadi pagi"."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from aftercare.triage.matcher import Match
from aftercare.triage.text import Tokens


def estimate_day(timeframes: Iterable[Match], tokens: Tokens, numbers: Mapping[str, int],
                 appointments: Collection[str] = ()) -> int | None:
    """The latest day the reply names; vague words ("today", "yesterday") count only when nothing is explicit.

    "worse on day 4 than day 1" is day 4; "swollen this morning" is day 0; no time words at all is None. A time
    told of an appointment ("wait for the 2 week review") is not a day the reply speaks of.
    """
    explicit: list[int] = []
    vague: list[int] = []
    words = tokens.words
    for match in timeframes:
        if match.end < len(words) and words[match.end] in appointments:
            continue
        entry = match.entry
        if entry.key == "scale":
            number = _first_number(tokens.words[match.start:match.end], numbers)
            if number is not None:
                explicit.append(number * entry.value)
        elif entry.value >= 2:
            explicit.append(entry.value)
        else:
            vague.append(entry.value)
    if explicit:
        return max(explicit)
    return max(vague) if vague else None


def _first_number(words: list[str], numbers: Mapping[str, int]) -> int | None:
    for word in words:
        if word.isdigit():
            return int(word)
        if word in numbers:
            return numbers[word]
    return None
