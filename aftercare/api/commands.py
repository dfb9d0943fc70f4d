"""`aftercare apikey ...`: keys for booking systems using the enrollment API."""

from __future__ import annotations

import click


@click.group()
def apikey() -> None:
    """API keys for booking systems (the enrollment API)."""
