"""Inbound SMS: Twilio webhooks, carrier compliance keywords, matching the sender, triage and answers."""
