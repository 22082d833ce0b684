"""``fernando-telemetry channels``: notification channels (email, Slack, webhooks) of a license or of the platform.

The secret key must be the server's (same ``FERNANDO_TELEMETRY_SECRET_KEY``, or the same data directory
holding the generated one), or the server cannot open the secrets stored here.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import typer
from rich.table import Table

from fernando_telemetry.cli.common import DatabaseUrlOption, console, err_console, note
from fernando_telemetry.composition import notification_wiring, runtime
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import InvalidInput
from fernando_telemetry.services import channel_tests, notification_channels
from fernando_telemetry.settings import load_settings, quotas_of
from fernando_telemetry.storage.database import session_factory

__all__ = ["app"]

app = typer.Typer(
    help="Notification channels. Example: fernando-telemetry channels create --license-id 1 --name ops-email --type email --to ops@example.com",
    no_args_is_help=True,
)

LicenseOption = typer.Option(
    None, "--license-id", help="The license the channel belongs to; omit for a platform channel (platform-wide rules)."
)


def _spec(
    json_text: str | None,
    name: str | None,
    channel_type: str | None,
    to: list[str],
    webhook_url: str | None,
    url: str | None,
    secret: str | None,
    payload_format: str | None,
    no_send_resolved: bool,
    disabled: bool,
) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if json_text is not None:
        text = sys.stdin.read() if json_text == "-" else json_text
        if text.startswith("@"):
            try:
                with open(text[1:], encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise InvalidInput(f"--json {text}: cannot read the file ({exc.strerror})") from None
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"--json is not valid JSON: {exc}") from None
        if not isinstance(spec, dict):
            raise InvalidInput("--json must be a JSON object")
    for key, value in (
        ("name", name),
        ("type", channel_type),
        ("webhook_url", webhook_url),
        ("url", url),
        ("secret", secret),
        ("format", payload_format),
    ):
        if value is not None:
            spec[key] = value
    if to:
        spec["to"] = to
    if no_send_resolved:
        spec["send_resolved"] = False
    if disabled:
        spec["enabled"] = False
    return spec


def _shown(view: notification_channels.ChannelView) -> dict[str, Any]:
    shown = view.as_dict()
    shown["created_at"], shown["updated_at"] = view.created_at.isoformat(), view.updated_at.isoformat()
    return shown


def _target(view: notification_channels.ChannelView) -> str:
    settings = view.settings
    if view.type == "email":
        server = f" via {settings['smtp_host']}" if settings.get("smtp_host") else ""
        return ", ".join(settings.get("to", [])) + server
    if view.type == "slack":
        return str(settings.get("webhook_url", ""))
    return f"{settings.get('url', '')} ({settings.get('format', 'native')}{', signed' if settings.get('secret') else ''})"


@app.command("list")
def list_channels(
    license_id: int | None = typer.Option(None, "--license-id", help="Only this license's channels."),
    platform: bool = typer.Option(False, "--platform", help="Only the platform's channels (no license)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (secrets masked) instead of a table."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """List channels (every license's unless narrowed); secret fields are shown masked.

    Example: fernando-telemetry channels list --license-id 1
    """
    if platform and license_id is not None:
        raise InvalidInput("give --license-id or --platform, not both")
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        with session_factory(engine)() as session:
            views = notification_channels.list_channels(
                session, license_id=license_id, every_license=license_id is None and not platform
            )
    if as_json:
        print(json.dumps([_shown(view) for view in views], indent=2))
        return
    table = Table("license", "name", "type", "target", "resolved", "enabled")
    for view in views:
        table.add_row(
            "platform" if view.license_id is None else str(view.license_id),
            view.name,
            view.type,
            _target(view),
            "yes" if view.send_resolved else "no",
            "yes" if view.enabled else "no",
        )
    console.print(table)


@app.command("create")
def create_channel(
    license_id: int | None = LicenseOption,
    json_text: str | None = typer.Option(
        None, "--json", help="The channel as a JSON object; '@file.json' reads a file, '-' stdin."
    ),
    name: str | None = typer.Option(None, "--name", help="Its name (rules list channels by name)."),
    channel_type: str | None = typer.Option(None, "--type", help="email, slack or webhook."),
    to: list[str] = typer.Option([], "--to", help="email: a recipient (repeatable)."),
    webhook_url: str | None = typer.Option(None, "--webhook-url", help="slack: the incoming webhook URL."),
    url: str | None = typer.Option(None, "--url", help="webhook: the URL to POST to."),
    secret: str | None = typer.Option(None, "--secret", help="webhook: signing secret (X-Fernando-Signature)."),
    payload_format: str | None = typer.Option(None, "--format", help="webhook: native or alertmanager."),
    no_send_resolved: bool = typer.Option(False, "--no-send-resolved", help="Do not notify when alerts resolve."),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled."),
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Create a channel; options are merged over --json. It is printed as JSON with secrets masked.

    Example: fernando-telemetry channels create --license-id 1 --name pager --type webhook --url https://example.com/hook --format alertmanager
    """
    spec = _spec(json_text, name, channel_type, to, webhook_url, url, secret, payload_format, no_send_resolved, disabled)
    settings = load_settings(database_url=database_url)
    box = notification_wiring.secret_box(settings)
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine).begin() as session:
            view = notification_channels.create(
                session,
                caller=Caller.for_cli(),
                license_id=license_id,
                spec=spec,
                box=box,
                targets=notification_wiring.target_policy(settings),
                quotas=quotas_of(settings),
            )
    note(f"created channel {view.name!r} ({view.type})")
    print(json.dumps(_shown(view), indent=2))


@app.command("delete")
def delete_channel(
    name: str = typer.Argument(..., help="The channel's name."),
    license_id: int | None = LicenseOption,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Delete a channel (refused while a rule names it).

    Example: fernando-telemetry channels delete ops-email --license-id 1
    """
    with runtime.database_engine(load_settings(database_url=database_url), note=note) as engine:
        with session_factory(engine).begin() as session:
            notification_channels.delete(session, caller=Caller.for_cli(), license_id=license_id, name=name)
    console.print(f"deleted channel {name!r}")


@app.command("test")
def test_channel(
    name: str = typer.Argument(..., help="The channel's name."),
    license_id: int | None = LicenseOption,
    database_url: str | None = DatabaseUrlOption,
) -> None:
    """Send a test message to a channel now and print how it went; exit 1 if it failed.

    Example: fernando-telemetry channels test slack --license-id 1
    """
    settings = load_settings(database_url=database_url)
    box = notification_wiring.secret_box(settings)
    with runtime.database_engine(settings, note=note) as engine:
        with session_factory(engine).begin() as session:
            channel = notification_channels.sendable_by_name(session, license_id=license_id, name=name, box=box)
    result = channel_tests.send_test(
        channel,
        notifier=notification_wiring.notifier(settings),
        now=datetime.now(UTC),
        external_url=notification_wiring.external_url(settings),
    )
    answer = f"HTTP {result.http_status}" if result.http_status is not None else (result.smtp_reply or "no answer")
    latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
    if result.ok:
        console.print(f"sent to {name!r}: {answer}{latency}" + (f" ({result.error})" if result.error else ""))
        return
    err_console.print(f"[red]error:[/red] test message to {name!r} failed: {result.error} ({answer}{latency})", soft_wrap=True)
    raise typer.Exit(1)
