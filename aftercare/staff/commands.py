"""`aftercare staff ...`: web accounts for clinic staff."""

from __future__ import annotations

import click


@click.group()
def staff() -> None:
    """Staff accounts for the web inbox."""
