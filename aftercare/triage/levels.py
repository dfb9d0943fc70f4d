"""Triage levels, most serious first, and the result a triage returns."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class TriageLevel(StrEnum):
    EMERGENCY = "emergency"
    URGENT = "urgent"
    ROUTINE = "routine"
    OK = "ok"

    @property
    def rank(self) -> int:
        """Higher is more serious, so `max(levels, key=rank)` is the level that decides."""
        return RANK[self]


RANK = {TriageLevel.OK: 0, TriageLevel.ROUTINE: 1, TriageLevel.URGENT: 2, TriageLevel.EMERGENCY: 3}


class TriageResult:
    """A triage: the level, the stable ids of the signs found (most serious first), why, and its basis.

    `basis` is "signs" when a sign decided the level, else the quiet reason: "question", "positive" (thanks,
    praise), "denied" (the signs named are absent or explained), "empty", or "unplaced" (nothing recognised,
    or a description the lexicon could not place: a person must read it). Treat it as read-only. The explanation is built when first read: most replies are never escalated, so
    nobody reads it, and building it is a fair share of a triage's time.
    """

    __slots__ = ("level", "signs", "_explanation", "_basis")

    def __init__(self, level: TriageLevel, signs: list[str] | None = None,
                 explanation: str | Callable[[], str] = "", basis: str = "signs"):
        self.level = level
        self.signs = signs if signs is not None else []
        self._explanation = explanation
        self._basis = basis

    @property
    def basis(self) -> str:
        return self._basis

    @property
    def explanation(self) -> str:
        if not isinstance(self._explanation, str):
            self._explanation = self._explanation()
        return self._explanation

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level.value, "signs": list(self.signs), "explanation": self.explanation,
                "basis": self.basis}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TriageResult):
            return NotImplemented
        return ((self.level, self.signs, self.explanation, self.basis)
                == (other.level, other.signs, other.explanation, other.basis))

    __hash__ = None  # type: ignore[assignment]  # equal results may differ in identity; lists are unhashable

    def __repr__(self) -> str:
        return f"TriageResult(level={self.level.value!r}, signs={self.signs!r}, explanation={self.explanation!r}, basis={self.basis!r})"
