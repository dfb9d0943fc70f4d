"""Escalations: paging the on-call clinician about a dangerous reply until someone acknowledges."""
