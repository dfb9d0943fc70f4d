"""Celery app and tasks: thin wrappers around aftercare's service functions."""
