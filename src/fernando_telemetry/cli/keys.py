"""``fernando-telemetry licenses`` and ``keys``: tenants and the API keys that act for them.

Each command parses its options, makes the operator's ``Caller`` and calls one ``services.keys`` use case, which
owns the transaction and the audit entry."""

from __future__ import annotations

import typer
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, note
from fernando_telemetry.composition import runtime
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.keys import new_token
from fernando_telemetry.services import keys
from fernando_telemetry.settings import load_settings, quotas_of
from fernando_telemetry.storage.database import session_factory

licenses_app = typer.Typer(
    help="Licenses (tenants). Example: fernando-telemetry licenses create --name Acme", no_args_is_help=True
)
keys_app = typer.Typer(
    help="API keys. Example: fernando-telemetry keys create --license-id 1 --scope ingest", no_args_is_help=True
)

__all__ = ["keys_app", "licenses_app", "new_token"]  # new_token now lives in core.keys; importable here as before


@licenses_app.command("create")
def create_license(
    name: str = typer.Option(..., "--name", help="The license's display name."),
    plan: str | None = typer.Option(None, "--plan", help="Plan name, e.g. pro."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create a license; its id is printed alone on the last line.

    Example: fernando-telemetry licenses create --name "Acme Corp" --plan pro
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        license_id = keys.open_license(session_factory(engine), caller=Caller.for_cli(), name=name, plan=plan)
    note(f"created license {name!r}")
    print(license_id)


@keys_app.command("create")
def create_key(
    license_id: int | None = typer.Option(None, "--license-id", help="The license the key acts for."),
    scope: list[str] = typer.Option([], "--scope", help="ingest, read (repeatable)."),
    admin: bool = typer.Option(False, "--admin", help="An admin key: every scope, every license, no license of its own."),
    name: str | None = typer.Option(None, "--name", help="A label to tell keys apart."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create an API key; the key is printed once, alone on the last line (only its hash is stored).

    Example: fernando-telemetry keys create --license-id 1 --scope ingest --scope read --name web
    """
    settings = load_settings(database_url=database_url)
    with runtime.database_engine(settings, note=note) as engine:
        created = keys.issue_key(
            session_factory(engine),
            caller=Caller.for_cli(),
            license_id=license_id,
            scopes=scope,
            admin=admin,
            name=name,
            new_token=new_token,
            quotas=quotas_of(settings),
        )
    note(f"created API key {created.api_key_id}; store it now, it cannot be shown again")
    print(created.token)


@keys_app.command("list")
def list_keys(
    license_id: int | None = typer.Option(None, "--license-id", help="Only this license's keys."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List keys: id, prefix, license, scopes, last use, revocation.

    Example: fernando-telemetry keys list --license-id 1
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        found = keys.read_keys(session_factory(engine), caller=Caller.for_cli(), license_id=license_id)
    table = Table("id", "name", "prefix", "license", "scopes", "created", "last used", "revoked")
    for key in found:
        table.add_row(
            str(key.api_key_id),
            key.name or "",
            key.key_prefix + "...",
            "admin" if key.license_id is None else str(key.license_id),
            ",".join(key.scopes),
            f"{key.created_at:%Y-%m-%d %H:%M}",
            f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never",
            f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_key(
    api_key_id: int = typer.Argument(..., help="The key's id (see keys list)."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Revoke a key; requests with it are refused from now on.

    Example: fernando-telemetry keys revoke 3
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        keys.revoke_key(session_factory(engine), caller=Caller.for_cli(), api_key_id=api_key_id)
    console.print(f"revoked API key {api_key_id}")
