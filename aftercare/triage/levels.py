"""Triage levels, most serious first, and the result a triage returns."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class TriageResult:
    level: TriageLevel
    signs: list[str] = field(default_factory=list)
    explanation: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"level": self.level.value, "signs": list(self.signs), "explanation": self.explanation}
