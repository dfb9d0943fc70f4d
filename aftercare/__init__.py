"""Aftercare: post-treatment aftercare reminders and safety triage for aesthetic clinics."""
