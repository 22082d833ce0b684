"""API keys and licenses: create, list, revoke, and authenticate a presented key."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized, field_problem
from fernando_telemetry.core.keys import KEY_PREFIX, Principal, Scope, display_prefix, hash_key, looks_like_key, same_hash
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.services import audit
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.storage.models import ApiKey, License

__all__ = [
    "CreatedKey",
    "KeyInfo",
    "authenticate",
    "create_key",
    "create_license",
    "issue_key",
    "list_keys",
    "open_license",
    "read_keys",
    "require",
    "revoke",
    "revoke_key",
]

# last_used_at is refreshed at most this often per key, so authentication stays a read
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class CreatedKey:
    api_key_id: int
    token: str
    """The key itself: shown once, never stored."""


@dataclass(frozen=True)
class KeyInfo:
    api_key_id: int
    name: str | None
    key_prefix: str
    license_id: int | None
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def create_license(session: Session, *, name: str, plan: str | None = None) -> int:
    if not name.strip():
        raise InvalidInput("a license needs a non-empty name")
    license_ = License(name=name.strip(), plan=plan)
    session.add(license_)
    session.flush()
    return license_.license_id


def _scopes(scopes: Iterable[str], *, admin: bool) -> list[str]:
    chosen = {Scope.INGEST.value, Scope.READ.value, Scope.ADMIN.value} if admin else set()
    for scope in scopes:
        try:
            chosen.add(Scope(scope).value)
        except ValueError:
            raise InvalidInput(f"unknown scope {scope!r}: use {', '.join(s.value for s in Scope)}") from None
    if not chosen:
        raise InvalidInput(
            "a key needs at least one scope (ingest, read) unless it is an admin key",
            details=[field_problem("scopes", "missing")],
        )
    return sorted(chosen)


def create_key(
    session: Session,
    *,
    license_id: int | None,
    scopes: Iterable[str],
    admin: bool = False,
    name: str | None = None,
    new_token: Callable[[], str],
    quotas: Quotas = DEFAULT_QUOTAS,
) -> CreatedKey:
    """A new key for a license (or an admin key, which has no license); only its hash is stored. At most
    ``quotas.keys`` unrevoked keys per license (``QuotaExceeded``)."""
    chosen = _scopes(scopes, admin=admin)
    if Scope.ADMIN in chosen and license_id is not None:
        raise InvalidInput(
            "an admin key belongs to no license: ask for a key of the license or for an admin key, not both",
            details=[field_problem("license_id", "not allowed for an admin key")],
        )
    if Scope.ADMIN not in chosen:
        if license_id is None:
            raise InvalidInput(
                "a key needs a license unless it is an admin key", details=[field_problem("license_id", "missing")]
            )
        if session.get(License, license_id) is None:
            raise NotFound(f"license {license_id} does not exist: create the license first")
    quota.ensure_room(session, kind="keys", license_id=license_id, limit=quotas.keys)
    token = new_token()
    if not looks_like_key(token):
        raise ValueError("new_token must produce a key starting with " + KEY_PREFIX)
    key = ApiKey(name=name, key_prefix=display_prefix(token), key_hash=hash_key(token), license_id=license_id, scopes=chosen)
    session.add(key)
    session.flush()
    return CreatedKey(api_key_id=key.api_key_id, token=token)


def list_keys(session: Session, *, license_id: int | None = None) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.api_key_id)
    if license_id is not None:
        query = query.where(ApiKey.license_id == license_id)
    return [
        KeyInfo(k.api_key_id, k.name, k.key_prefix, k.license_id, tuple(k.scopes), k.created_at, k.last_used_at, k.revoked_at)
        for k in session.scalars(query)
    ]


def revoke(session: Session, *, api_key_id: int, now: datetime) -> KeyInfo:
    """Revoke a key from ``now`` on (authentication reads the key on every request, so it takes effect at once)."""
    key = session.get(ApiKey, api_key_id)
    if key is None:
        raise NotFound(f"API key {api_key_id} does not exist")
    if key.revoked_at is None:
        key.revoked_at = now
        session.flush()
    return KeyInfo(
        key.api_key_id,
        key.name,
        key.key_prefix,
        key.license_id,
        tuple(key.scopes),
        key.created_at,
        key.last_used_at,
        key.revoked_at,
    )


def authenticate(session: Session, *, token: str | None, now: datetime) -> Principal:
    """The principal of a presented key; ``Unauthorized`` for a missing, unknown or revoked key."""
    if not token:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
    if not looks_like_key(token):
        raise Unauthorized("the API key is not valid")
    presented_hash = hash_key(token)
    key = session.scalars(select(ApiKey).where(ApiKey.key_hash == presented_hash)).one_or_none()
    if key is None or not same_hash(key.key_hash, presented_hash):
        raise Unauthorized("the API key is not valid")
    if key.revoked_at is not None:
        raise Unauthorized("the API key has been revoked")
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        session.execute(update(ApiKey).where(ApiKey.api_key_id == key.api_key_id).values(last_used_at=now))
    return Principal(api_key_id=key.api_key_id, license_id=key.license_id, scopes=frozenset(key.scopes))


def require(principal: Principal, scope: Scope) -> None:
    """``Forbidden`` unless the key carries ``scope`` (admin keys carry all)."""
    if scope not in principal.scopes and not principal.is_admin:
        raise Forbidden(f"this API key lacks the '{scope.value}' scope")


def open_license(sessions: sessionmaker[Session], *, caller: Caller, name: str, plan: str | None = None) -> int:
    """The use case behind ``licenses create``: the license and its audit entry in one transaction."""
    with sessions.begin() as session:
        license_id = create_license(session, name=name, plan=plan)
        audit.record(
            session,
            actor=caller.actor,
            action="license.create",
            target_type="license",
            target_id=license_id,
            license_id=license_id,
            now=caller.now(),
            details={"name": name, "plan": plan},
        )
    return license_id


def issue_key(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None,
    scopes: Iterable[str],
    admin: bool = False,
    name: str | None = None,
    new_token: Callable[[], str],
    quotas: Quotas = DEFAULT_QUOTAS,
) -> CreatedKey:
    """The use case behind ``keys create``: the key and its audit entry (never the key itself) in one transaction."""
    scopes = list(scopes)
    with sessions.begin() as session:
        created = create_key(
            session, license_id=license_id, scopes=scopes, admin=admin, name=name, new_token=new_token, quotas=quotas
        )
        audit.record(
            session,
            actor=caller.actor,
            action="key.create",
            target_type="api_key",
            target_id=created.api_key_id,
            license_id=license_id,
            now=caller.now(),
            details={"name": name, "scopes": sorted(scopes), "admin": admin},
        )
    return created


def read_keys(sessions: sessionmaker[Session], *, caller: Caller, license_id: int | None = None) -> list[KeyInfo]:
    """The use case behind ``keys list``: a license key's caller sees only its own license's keys."""
    with sessions() as session:
        return list_keys(session, license_id=caller.visible_license(license_id))


def revoke_key(sessions: sessionmaker[Session], *, caller: Caller, api_key_id: int) -> KeyInfo:
    """The use case behind ``keys revoke``: the revocation and its audit entry in one transaction."""
    with sessions.begin() as session:
        now = caller.now()
        revoked = revoke(session, api_key_id=api_key_id, now=now)
        audit.record(
            session,
            actor=caller.actor,
            action="key.revoke",
            target_type="api_key",
            target_id=api_key_id,
            license_id=revoked.license_id,
            now=now,
        )
    return revoked
