"""Escalations: paging the on-call clinician about a dangerous reply until someone acknowledges."""

# The sign an escalation carries when the patient answered YES to a check-in's red-flag question.
RED_FLAG_SIGN = "red_flag_answered_yes"
# The sign an escalation carries when staff escalated a review item from the inbox (their name is in explanation).
REVIEW_SIGN = "escalated_from_review"
