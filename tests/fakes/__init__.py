"""Fakes of the providers we talk to (Twilio's REST API, an SMTP server), served for real on loopback."""
