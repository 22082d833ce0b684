"""Notification channels of a license: create, update, get, list, delete (each change audited by its caller);
and the channel as ``notify`` sends to it (secrets decrypted). Validation is ``services.channel_validation``,
test sends ``services.channel_tests``.

A channel is flat JSON, e.g. ``{"name": "ops-email", "type": "email", "to": ["ops@example.com"]}``,
``{"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/..."}`` or
``{"name": "hook", "type": "webhook", "url": "https://...", "secret": "...", "format": "alertmanager"}``.
Secret fields (``smtp_password``, ``webhook_url``, ``url``, ``secret``, ``headers``) are sealed in
``notification_channels.secrets`` by a ``SecretBox``; ``config`` keeps only their masked form, which is all
that is ever shown. Sending a masked value back in an update keeps the stored secret.

A rule may name a channel type instead of a channel (``["email", "slack"]``): the license's default channel of
that type, its oldest enabled one (``resolve_for_rule``). Imports storage, notify, core and the services
named above. The session-level functions never commit; the use cases at the end (taking ``sessions`` and a
``Caller``) own their transaction and scope check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Conflict, FieldProblems, InvalidInput, NotFound, field_problem
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.notify.notifier import Channel, ChannelNotifier, EmailChannel, Notifier, SlackChannel, WebhookChannel
from fernando_telemetry.notify.targets import TargetPolicy
from fernando_telemetry.services import audit, channel_validation
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.services.channel_validation import CHANNEL_TYPES, NAME_PATTERN, SECRET_FIELDS
from fernando_telemetry.services.secret_box import SecretBox, SecretsUnreadable
from fernando_telemetry.storage.models import AlertRule, NotificationChannel

__all__ = [
    "CHANNEL_TYPES",
    "SECRET_FIELDS",
    "ChannelView",
    "NotificationSetup",
    "RuleChannels",
    "change_channel",
    "create",
    "create_channel",
    "delete",
    "delete_channel",
    "existing_names",
    "get",
    "list_channels",
    "missing_type_message",
    "read_channel",
    "read_channels",
    "resolve_for_rule",
    "sendable",
    "sendable_by_name",
    "update",
]


@dataclass(frozen=True)
class ChannelView:
    """A channel as the API shows it: secret fields masked."""

    channel_id: int
    license_id: int | None
    name: str
    type: str
    send_resolved: bool
    enabled: bool
    settings: dict[str, Any]
    """The type's fields (``to``, ``smtp_host``, ``webhook_url`` masked, ...)."""
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "license_id": self.license_id,
            "name": self.name,
            "type": self.type,
            "send_resolved": self.send_resolved,
            "enabled": self.enabled,
            **self.settings,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class NotificationSetup:
    """What the channel routes need besides the database: the box for secrets, the notifier for test sends,
    and the base URL for links."""

    box: SecretBox
    notifier: Notifier
    external_url: str | None = None
    targets: TargetPolicy = field(default_factory=TargetPolicy)

    @classmethod
    def with_key(cls, secret_key: str, *, external_url: str | None = None) -> NotificationSetup:
        """A box keyed by ``secret_key`` and a notifier with no SMTP defaults."""
        return cls(box=SecretBox(secret_key), notifier=ChannelNotifier(), external_url=external_url)


def _view(row: NotificationChannel) -> ChannelView:
    return ChannelView(
        channel_id=row.channel_id,
        license_id=row.license_id,
        name=row.name,
        type=row.type,
        send_resolved=row.send_resolved,
        enabled=row.enabled,
        settings=dict(row.config),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _find(session: Session, *, license_id: int | None, name: str, lock: bool = False) -> NotificationChannel:
    where = f"license {license_id}" if license_id is not None else "the platform (no license)"
    if not NAME_PATTERN.fullmatch(name):  # no such name can exist (and a NUL would not reach PostgreSQL)
        raise NotFound(f"no notification channel named {name[:100]!r} for {where}")
    statement = select(NotificationChannel).where(
        NotificationChannel.license_id.is_not_distinct_from(license_id), NotificationChannel.name == name
    )
    if lock:
        statement = statement.with_for_update()
    row = session.scalars(statement).one_or_none()
    if row is None:
        raise NotFound(f"no notification channel named {name!r} for {where}")
    return row


def _require_object(spec: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{what} must be a JSON object", details=[field_problem("(body)", "not an object")])
    return spec


def create(
    session: Session,
    *,
    caller: Caller,
    license_id: int | None,
    spec: Mapping[str, Any],
    box: SecretBox,
    targets: TargetPolicy | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> ChannelView:
    """A new channel of ``license_id`` (None: a platform channel, for platform-wide rules); at most
    ``quotas.channels`` per license (``QuotaExceeded``). Audited as ``channel.create`` by ``caller``."""
    spec = _require_object(spec, "a channel")
    problems = FieldProblems()
    config, secrets = channel_validation.validate(spec, problems, targets)
    problems.raise_if_any("the channel is not valid", counted=False)
    name = spec["name"]
    existing = session.scalars(
        select(NotificationChannel.channel_id).where(
            NotificationChannel.license_id.is_not_distinct_from(license_id), NotificationChannel.name == name
        )
    ).first()
    if existing is not None:
        raise Conflict(f"a notification channel named {name!r} already exists", details=[field_problem("name", "taken")])
    quota.ensure_room(session, kind="channels", license_id=license_id, limit=quotas.channels)
    row = NotificationChannel(
        license_id=license_id,
        name=name,
        type=spec["type"],
        config=config,
        secrets=box.seal(secrets) if secrets else None,
        send_resolved=spec.get("send_resolved", True),
        enabled=spec.get("enabled", True),
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    view = _view(row)
    _audit(session, caller, "channel.create", name=view.name, license_id=view.license_id, details={"type": view.type})
    return view


def _audit(
    session: Session, caller: Caller, action: str, *, name: str, license_id: int | None, details: Mapping[str, Any] | None = None
) -> None:
    # inside the change's transaction, so the API and the CLI leave the same entry
    audit.record(
        session,
        actor=caller.actor,
        action=action,
        target_type="notification_channel",
        target_id=name,
        license_id=license_id,
        now=caller.now(),
        details=details,
    )


def update(
    session: Session,
    *,
    caller: Caller,
    license_id: int | None,
    name: str,
    changes: Mapping[str, Any],
    box: SecretBox,
    targets: TargetPolicy | None = None,
) -> ChannelView:
    """Change some fields; ``null`` removes an optional field; a masked secret sent back keeps the stored one.
    The name and the type cannot change (rules refer to the name). Audited as ``channel.update`` by ``caller``."""
    changes = _require_object(changes, "the changes")
    row = _find(session, license_id=license_id, name=name, lock=True)
    problems = FieldProblems()
    for fixed in ("name", "type"):
        if fixed in changes and changes[fixed] != getattr(row, fixed):
            problems.add(fixed, "cannot be changed (create a new channel and point the rules at it)")
    problems.raise_if_any("the changes are not valid", counted=False)
    try:
        stored_secrets = box.open(row.secrets)
    except SecretsUnreadable:
        stored_secrets = {}  # the key changed: whatever is required must be entered again
    current: dict[str, Any] = {
        "name": row.name,
        "type": row.type,
        "send_resolved": row.send_resolved,
        "enabled": row.enabled,
        **{key: value for key, value in row.config.items() if key not in SECRET_FIELDS},
        **stored_secrets,
    }
    for key, value in changes.items():
        if key in SECRET_FIELDS and value is not None and value == row.config.get(key):
            continue  # the masked form came back unchanged
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    config, secrets = channel_validation.validate(current, problems, targets)
    problems.raise_if_any("the channel is not valid", counted=False)
    row.config = config
    row.secrets = box.seal(secrets) if secrets else None
    row.send_resolved = current.get("send_resolved", True)
    row.enabled = current.get("enabled", True)
    session.flush()
    session.refresh(row)
    view = _view(row)
    _audit(session, caller, "channel.update", name=view.name, license_id=view.license_id, details={"fields": sorted(changes)})
    return view


def get(session: Session, *, license_id: int | None, name: str) -> ChannelView:
    return _view(_find(session, license_id=license_id, name=name))


def list_channels(session: Session, *, license_id: int | None, every_license: bool = False) -> list[ChannelView]:
    """The channels of ``license_id`` (None: the platform's), or of every license, by license then name."""
    statement = select(NotificationChannel).order_by(NotificationChannel.license_id.nulls_first(), NotificationChannel.name)
    if not every_license:
        statement = statement.where(NotificationChannel.license_id.is_not_distinct_from(license_id))
    return [_view(row) for row in session.scalars(statement)]


def existing_names(session: Session, *, license_id: int | None, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are channels of ``license_id`` (for checking a rule's ``notification_channels``)."""
    wanted = [name for name in names if isinstance(name, str)]
    if not wanted:
        return set()
    return set(
        session.scalars(
            select(NotificationChannel.name).where(
                NotificationChannel.license_id.is_not_distinct_from(license_id), NotificationChannel.name.in_(wanted)
            )
        )
    )


@dataclass(frozen=True)
class RuleChannels:
    """What a rule's ``notification_channels`` entries stand for in one license."""

    channels: list[NotificationChannel]
    """The channels to notify, each once, in the order the entries name them."""
    missing_types: list[str]
    """Types named (``"email"``...) of which the license has no enabled channel."""
    unknown: list[str]
    """Entries that are neither a channel's name nor a channel type."""


def resolve_for_rule(session: Session, *, license_id: int | None, entries: Iterable[Any]) -> RuleChannels:
    """The channels a rule's entries mean in ``license_id`` (None: the platform's channels).

    An entry is a channel's name; a channel type (``email``, ``slack``, ``webhook``) that is not also a
    channel's name means the license's default channel of that type: its oldest enabled channel of that type
    (the lowest ``channel_id``). Disabled channels named directly are returned (the caller decides).
    """
    wanted = list(dict.fromkeys(entry for entry in entries if isinstance(entry, str)))
    rows = session.scalars(
        select(NotificationChannel)
        .where(NotificationChannel.license_id.is_not_distinct_from(license_id))
        .order_by(NotificationChannel.channel_id)
    ).all()
    by_name = {row.name: row for row in rows}
    chosen: dict[int, NotificationChannel] = {}
    missing: list[str] = []
    unknown: list[str] = []
    for entry in wanted:
        row = by_name.get(entry)
        if row is None and entry in CHANNEL_TYPES:
            row = next((candidate for candidate in rows if candidate.type == entry and candidate.enabled), None)
            if row is None:
                missing.append(entry)
                continue
        if row is None:
            unknown.append(entry)
            continue
        chosen.setdefault(row.channel_id, row)
    return RuleChannels(list(chosen.values()), missing, unknown)


def missing_type_message(channel_type: str, *, license_id: int | None) -> str:
    """Why a rule naming ``channel_type`` has nowhere to send: said the same at create time and at send time."""
    owner = "the platform" if license_id is None else f"license {license_id}"
    return (
        f"no {channel_type} channel: the rule names the type {channel_type!r}, meaning the default (oldest enabled) "
        f"{channel_type} channel of {owner}, and there is none; create one at /api/v1/notification-channels"
    )


def _last_enabled_of_type(session: Session, row: NotificationChannel) -> bool:
    others = session.scalars(
        select(NotificationChannel.channel_id).where(
            NotificationChannel.license_id.is_not_distinct_from(row.license_id),
            NotificationChannel.type == row.type,
            NotificationChannel.enabled,
            NotificationChannel.channel_id != row.channel_id,
        )
    ).first()
    return others is None


def delete(session: Session, *, caller: Caller, license_id: int | None, name: str) -> None:
    """Remove a channel; refused (``Conflict``) while a rule of the same license still names it, or names its
    type and it is the license's last enabled channel of that type. Queued
    notifications to it are abandoned by the dispatcher; the delivery log keeps its name. Audited as
    ``channel.delete`` by ``caller``."""
    row = _find(session, license_id=license_id, name=name, lock=True)
    names_it = AlertRule.notification_channels.contains([name])
    if row.type != name and row.enabled and _last_enabled_of_type(session, row):
        # the license's only enabled channel of its type: rules naming the type would have nowhere to send
        names_it = names_it | AlertRule.notification_channels.contains([row.type])
    rules = session.scalars(
        select(AlertRule.name).where(AlertRule.license_id.is_not_distinct_from(license_id), names_it).order_by(AlertRule.name)
    ).all()
    if rules:
        raise Conflict(
            f"channel {name!r} is used by rules {', '.join(repr(rule) for rule in rules)}: remove it from them first",
            details=[field_problem("name", "in use", rules=list(rules))],
        )
    session.delete(row)
    session.flush()
    # the entry names the scope asked for, as the API always wrote it
    _audit(session, caller, "channel.delete", name=name, license_id=license_id)


def sendable(row: NotificationChannel, *, box: SecretBox) -> Channel:
    """The channel as ``notify`` sends to it, secrets decrypted (``SecretsUnreadable`` if the key changed)."""
    secrets = box.open(row.secrets)
    config = row.config
    if row.type == "email":
        return EmailChannel(
            name=row.name,
            to=tuple(config.get("to", ())),
            sender=config.get("from"),
            smtp_host=config.get("smtp_host"),
            smtp_port=config.get("smtp_port"),
            smtp_security=config.get("smtp_security"),
            smtp_username=config.get("smtp_username"),
            smtp_password=_text(secrets.get("smtp_password")),
            tls_verify=config.get("tls_verify", True),
            ca_cert=config.get("ca_cert"),
        )
    if row.type == "slack":
        return SlackChannel(name=row.name, webhook_url=str(secrets.get("webhook_url", "")))
    headers = secrets.get("headers")
    return WebhookChannel(
        name=row.name,
        url=str(secrets.get("url", "")),
        secret=_text(secrets.get("secret")),
        format=config.get("format", "native"),
        headers=dict(headers) if isinstance(headers, dict) else {},
    )


def sendable_by_name(session: Session, *, license_id: int | None, name: str, box: SecretBox) -> Channel:
    return sendable(_find(session, license_id=license_id, name=name), box=box)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def read_channels(sessions: sessionmaker[Session], *, caller: Caller, license_id: int | None = None) -> list[ChannelView]:
    """The use case behind ``GET /api/v1/notification-channels``: an admin key asking for no license sees every
    license's channels, a license key its own."""
    scope = caller.visible_license(license_id)
    with sessions() as session:
        return list_channels(session, license_id=scope, every_license=caller.is_admin and license_id is None)


def create_channel(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None,
    spec: Mapping[str, Any],
    box: SecretBox,
    targets: TargetPolicy | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> ChannelView:
    """The use case behind ``POST /api/v1/notification-channels``: ``license_id`` checked against the caller's scope."""
    scope = caller.visible_license(license_id)
    with sessions.begin() as session:
        return create(session, caller=caller, license_id=scope, spec=spec, box=box, targets=targets, quotas=quotas)


def read_channel(sessions: sessionmaker[Session], *, caller: Caller, name: str, license_id: int | None = None) -> ChannelView:
    """The use case behind ``GET /api/v1/notification-channels/{name}``."""
    scope = caller.visible_license(license_id)
    with sessions() as session:
        return get(session, license_id=scope, name=name)


def change_channel(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    name: str,
    changes: Mapping[str, Any],
    box: SecretBox,
    targets: TargetPolicy | None = None,
    license_id: int | None = None,
) -> ChannelView:
    """The use case behind ``PATCH /api/v1/notification-channels/{name}``."""
    scope = caller.visible_license(license_id)
    with sessions.begin() as session:
        return update(session, caller=caller, license_id=scope, name=name, changes=changes, box=box, targets=targets)


def delete_channel(sessions: sessionmaker[Session], *, caller: Caller, name: str, license_id: int | None = None) -> None:
    """The use case behind ``DELETE /api/v1/notification-channels/{name}``."""
    scope = caller.visible_license(license_id)
    with sessions.begin() as session:
        delete(session, caller=caller, license_id=scope, name=name)
