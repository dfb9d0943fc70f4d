"""`aftercare apikey ...`: keys for booking systems using the enrollment API."""

from __future__ import annotations

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group()
def apikey() -> None:
    """API keys for booking systems (the enrollment API)."""


@apikey.command("create")
@click.option("--clinic", "clinic_slug", required=True)
@click.option("--label", help="What the key is for, e.g. the booking system's name")
@json_option
def create(clinic_slug: str, label: str | None, as_json: bool) -> None:
    """Create a key for one clinic. The key is printed once, here, and stored only hashed."""
    from aftercare.api.keys import create_key
    from aftercare.db import session_scope
    from aftercare.output import print_json

    with session_scope() as session:
        created = create_key(session, clinic_slug=clinic_slug, label=label)
        data = {"id": created.api_key.id, "clinic": clinic_slug, "prefix": created.api_key.prefix,
                "key": created.key}
    if as_json:
        print_json(data)
        return
    click.echo(data["key"])  # stdout holds only the key, for KEY=$(aftercare apikey create ...)
    click.echo(f"API key {data['id']} for {clinic_slug}: shown once, store it now "
               "(send it as `Authorization: Bearer <key>`)", err=True)


@apikey.command("list")
@click.option("--clinic", "clinic_slug", required=True)
@json_option
def list_(clinic_slug: str, as_json: bool) -> None:
    """A clinic's keys (never the keys themselves: their prefixes)."""
    from aftercare.api.keys import key_view, list_keys
    from aftercare.db import session_scope
    from aftercare.output import emit

    with session_scope() as session:
        rows = [key_view(row) for row in list_keys(session, clinic_slug=clinic_slug)]
    emit(rows, as_json=as_json, columns=["id", "prefix", "label", "created_at", "last_used_at", "revoked_at"],
         title="API keys")


@apikey.command("revoke")
@click.argument("key_id", type=int)
@json_option
def revoke(key_id: int, as_json: bool) -> None:
    """Revoke a key: requests with it are refused (401) from now on."""
    from aftercare.api.keys import key_view, revoke_key
    from aftercare.db import session_scope
    from aftercare.output import emit

    with session_scope() as session:
        data = key_view(revoke_key(session, key_id))
    emit(data, as_json=as_json, title=f"API key {key_id} revoked")
