"""Notification channels of a license: create, update, get, list, delete, with every problem of a channel
reported at once per field; and the channel as ``notify`` sends to it (secrets decrypted).

A channel is flat JSON, e.g. ``{"name": "ops-email", "type": "email", "to": ["ops@example.com"]}``,
``{"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/..."}`` or
``{"name": "hook", "type": "webhook", "url": "https://...", "secret": "...", "format": "alertmanager"}``.
Secret fields (``smtp_password``, ``webhook_url``, ``url``, ``secret``, ``headers``) are sealed in
``notification_channels.secrets`` by a ``SecretBox``; ``config`` keeps only their masked form, which is all
that is ever shown. Sending a masked value back in an update keeps the stored secret.

A rule may name a channel type instead of a channel (``["email", "slack"]``): the license's default channel of
that type, its oldest enabled one (``resolve_for_rule``).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Conflict, FieldProblems, InvalidInput, NotFound, field_problem
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.notify.message import channel_test_message
from fernando_telemetry.notify.notifier import Channel, ChannelNotifier, EmailChannel, Notifier, SlackChannel, WebhookChannel
from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.notify.smtp import SECURITY_MODES
from fernando_telemetry.notify.targets import MASK, TargetPolicy, mask_url, target_problem
from fernando_telemetry.notify.webhook_format import FORMATS
from fernando_telemetry.services import audit
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.services.secret_box import SecretBox, SecretsUnreadable
from fernando_telemetry.storage.models import AlertRule, NotificationChannel

__all__ = [
    "CHANNEL_TYPES",
    "SECRET_FIELDS",
    "ChannelView",
    "NotificationSetup",
    "RuleChannels",
    "create",
    "delete",
    "existing_names",
    "get",
    "list_channels",
    "missing_type_message",
    "resolve_for_rule",
    "sendable",
    "sendable_by_name",
    "send_test",
    "update",
]

CHANNEL_TYPES = ("email", "slack", "webhook")
COMMON_FIELDS = ("name", "type", "send_resolved", "enabled")
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "email": (
        "to",
        "from",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_username",
        "smtp_password",
        "tls_verify",
        "ca_cert",
    ),
    "slack": ("webhook_url",),
    "webhook": ("url", "secret", "format", "headers"),
}
REQUIRED_FIELDS = {"email": ("to",), "slack": ("webhook_url",), "webhook": ("url",)}
SECRET_FIELDS = frozenset({"smtp_password", "webhook_url", "url", "secret", "headers"})

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
HOST_PATTERN = re.compile(r"[A-Za-z0-9._\-\[\]:]{1,253}")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})
MAX_RECIPIENTS = 50
MIN_SIGNING_SECRET = 16


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


def _address_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be an email address"
    if len(value) > 254 or any(character in value for character in "\r\n"):
        return "must be an email address of at most 254 characters on one line"
    address = parseaddr(value)[1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or " " in address or "." not in domain.strip("."):
        return "must be an email address such as ops@example.com"
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _url_problem(url: Any, targets: TargetPolicy | None) -> str | None:
    """The URL's form, and where it points when a policy is given (the API and the CLI always give one)."""
    return target_problem(url) if targets is None or not isinstance(url, str) else targets.literal_problem(url)


def _validate(
    spec: Mapping[str, Any], problems: FieldProblems, targets: TargetPolicy | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a full channel spec; returns (public config, secrets) of the type's fields."""
    nul_fields = [key for key, value in spec.items() if _has_nul(key) or _has_nul(value)]
    for key in nul_fields:
        problems.add(key.replace("\x00", "\\0"), "must not contain NUL characters")
    if nul_fields:
        return {}, {}  # PostgreSQL cannot store them: say so, and check nothing else
    channel_type = spec.get("type")
    if "type" in spec and not isinstance(channel_type, str):
        problems.add("type", "must be a string naming one channel type", allowed=CHANNEL_TYPES)
        channel_type = None  # a list or an object is not hashable: nothing below may look it up
    fields = TYPE_FIELDS.get(channel_type, ()) if isinstance(channel_type, str) else ()
    for key in spec:
        if key not in COMMON_FIELDS and key not in fields:
            if isinstance(channel_type, str) and channel_type in TYPE_FIELDS:
                problems.add(key, f"is not a field of a {channel_type} channel", allowed=[*COMMON_FIELDS, *fields])
            elif key not in {field for names in TYPE_FIELDS.values() for field in names}:
                problems.add(key, "is not a known field")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.add("name", "must be 1 to 100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    if channel_type not in CHANNEL_TYPES and "type" not in {detail["field"] for detail in problems.details}:
        problems.add("type", "must be one of the channel types", allowed=CHANNEL_TYPES)
    for flag in ("send_resolved", "enabled", "tls_verify"):
        if flag in spec and not isinstance(spec[flag], bool):
            problems.add(flag, "must be true or false")
    if channel_type not in TYPE_FIELDS:
        return {}, {}
    for required in REQUIRED_FIELDS[channel_type]:
        if spec.get(required) in (None, "", []):
            problems.add(required, f"is required for a {channel_type} channel")
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    present = {key: spec[key] for key in fields if spec.get(key) is not None}
    if channel_type == "email":
        _validate_email(present, problems, config, secrets, targets)
    elif channel_type == "slack":
        url = present.get("webhook_url")
        if url is not None:
            problem = _url_problem(url, targets)
            if problem:
                problems.add("webhook_url", problem)
            else:
                secrets["webhook_url"] = url
                config["webhook_url"] = mask_url(url, keep_path=False)
    else:
        _validate_webhook(present, problems, config, secrets, targets)
    return config, secrets


def _validate_email(
    present: dict[str, Any],
    problems: FieldProblems,
    config: dict[str, Any],
    secrets: dict[str, Any],
    targets: TargetPolicy | None,
) -> None:
    to = present.get("to")
    if to is not None:
        recipients = [to] if isinstance(to, str) else to
        if not isinstance(recipients, list) or not recipients:
            problems.add("to", "must be a list of email addresses")
        elif len(recipients) > MAX_RECIPIENTS:
            problems.add("to", f"at most {MAX_RECIPIENTS} recipients")
        else:
            for index, recipient in enumerate(recipients):
                problem = _address_problem(recipient)
                if problem:
                    problems.add(f"to[{index}]", problem)
            config["to"] = list(dict.fromkeys(r.strip() for r in recipients if isinstance(r, str)))
    if "from" in present:
        problem = _address_problem(present["from"])
        if problem:
            problems.add("from", problem)
        config["from"] = present["from"]
    if "smtp_host" in present:
        host = present["smtp_host"]
        if not isinstance(host, str) or not HOST_PATTERN.fullmatch(host):
            problems.add("smtp_host", "must be a host name or IP address")
        elif targets is not None:
            problem = targets.host_problem(host)  # the same policy as webhooks: a name is checked at each send
            if problem:
                problems.add("smtp_host", problem)
        config["smtp_host"] = host
    if "smtp_port" in present:
        port = present["smtp_port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.add("smtp_port", "must be a port number from 1 to 65535")
        config["smtp_port"] = port
    if "smtp_security" in present:
        if present["smtp_security"] not in SECURITY_MODES:
            problems.add("smtp_security", "must be one of the security modes", allowed=SECURITY_MODES)
        config["smtp_security"] = present["smtp_security"]
    if "smtp_username" in present:
        if not isinstance(present["smtp_username"], str) or not present["smtp_username"]:
            problems.add("smtp_username", "must be a non-empty string")
        config["smtp_username"] = present["smtp_username"]
    if "smtp_password" in present:
        if not isinstance(present["smtp_password"], str):
            problems.add("smtp_password", "must be a string")
        elif "smtp_username" not in present:
            problems.add("smtp_password", "needs smtp_username")
        secrets["smtp_password"] = present["smtp_password"]
        config["smtp_password"] = MASK
    if "tls_verify" in present:
        config["tls_verify"] = present["tls_verify"]
    if "ca_cert" in present:
        pem = present["ca_cert"]
        if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
            problems.add("ca_cert", "must be PEM text (-----BEGIN CERTIFICATE-----)")
        else:
            try:
                ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError) as exc:
                problems.add("ca_cert", f"is not a readable certificate ({exc})")
        config["ca_cert"] = pem
    smtp_own = {"smtp_port", "smtp_security", "smtp_username", "smtp_password", "tls_verify", "ca_cert"} & present.keys()
    if smtp_own and "smtp_host" not in present:
        problems.add(
            "smtp_host", f"is required when {', '.join(sorted(smtp_own))} is given (the server defaults apply only as a whole)"
        )


def _validate_webhook(
    present: dict[str, Any],
    problems: FieldProblems,
    config: dict[str, Any],
    secrets: dict[str, Any],
    targets: TargetPolicy | None,
) -> None:
    url = present.get("url")
    if url is not None:
        problem = _url_problem(url, targets)
        if problem:
            problems.add("url", problem)
        else:
            secrets["url"] = url
            config["url"] = mask_url(url)
    if "secret" in present:
        secret = present["secret"]
        if not isinstance(secret, str) or len(secret) < MIN_SIGNING_SECRET or len(secret) > 1024:
            problems.add("secret", f"must be a string of {MIN_SIGNING_SECRET} to 1024 characters (e.g. openssl rand -hex 32)")
        secrets["secret"] = secret
        config["secret"] = MASK
    config["format"] = present.get("format", "native")
    if config["format"] not in FORMATS:
        problems.add("format", "must be one of the webhook formats", allowed=FORMATS)
    if "headers" in present:
        headers = present["headers"]
        if not isinstance(headers, dict) or len(headers) > 20:
            problems.add("headers", "must be an object of at most 20 header names and values")
        else:
            for header, value in headers.items():
                if not HEADER_NAME.fullmatch(header):
                    problems.add(f"headers.{header}", "is not a valid header name")
                elif header.lower() in RESERVED_HEADERS or header.lower().startswith("x-fernando-"):
                    problems.add(f"headers.{header}", "is set by the sender and cannot be given")
                if not isinstance(value, str) or len(value) > 4096 or any(c in value for c in "\r\n\0"):
                    problems.add(f"headers.{header}", "must be a string of at most 4096 characters on one line")
            secrets["headers"] = headers
            config["headers"] = {header: MASK for header in headers}


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
    config, secrets = _validate(spec, problems, targets)
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
    config, secrets = _validate(current, problems, targets)
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


def send_test(channel: Channel, *, notifier: Notifier, now: datetime, external_url: str | None = None) -> SendResult:
    """Send a test message (no alert behind it) to ``channel``; call it with no transaction open."""
    return notifier.send(channel, channel_test_message(channel_name=channel.name, now=now, external_url=external_url), now=now)
