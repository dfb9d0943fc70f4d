"""Safety triage of patient replies: emergency, urgent, routine or ok, with the signs found and why.

    from aftercare.triage import triage, TriageResult, TriageLevel
    result = triage("my lip went white and it hurts so bad", "en")
"""

from aftercare.triage.engine import triage
from aftercare.triage.levels import TriageLevel, TriageResult

__all__ = ["TriageLevel", "TriageResult", "triage"]
