"""The demo's tenant: its license (found again on a second run), its users, and the keys minted each run.

Keys are stored hashed, so a key printed by an earlier run cannot be shown again: every run mints a
read key to print, an ingest key for the demo services and an admin key for setting up rules; the ingest
and admin keys of earlier runs are revoked. Functions take a session and never commit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from fernando_telemetry.core.keys import Scope, new_token
from fernando_telemetry.services import keys, platform
from fernando_telemetry.services.synthetic import prepare_users
from fernando_telemetry.storage.models import ApiKey, License, User

__all__ = [
    "DEMO_LICENSE_NAME",
    "OPS_TEAM",
    "DemoKeys",
    "DemoTenant",
    "create_tenant",
    "find_tenant",
    "mint_keys",
    "revoke_key",
]

DEMO_LICENSE_NAME = "Fernando Demo Shop"
_MARKER = "fernando_demo"
"""Key in ``licenses.attributes`` that tells the demo's license from a real one of the same name."""

OPS_TEAM = (("ops-ana", "Ana Ops"), ("ops-ben", "Ben Oncall"), ("ops-chen", "Chen SRE"))
"""People of the shop's team, to acknowledge and assign alerts to."""

READ_KEY_NAME = "demo read (dashboard)"
INGEST_KEY_NAME = "demo ingest (shop services)"
ADMIN_KEY_NAME = "demo setup (admin)"


@dataclass(frozen=True)
class DemoTenant:
    license_id: int
    customer_ids: tuple[str, ...]
    """The shop's customers: the users the history and the live traffic are attributed to."""


@dataclass(frozen=True)
class DemoKeys:
    read: str
    ingest: str
    admin: str
    admin_key_id: int


def find_tenant(session: Session) -> DemoTenant | None:
    """The tenant an earlier run created, or None on a database the demo has not filled yet."""
    license_id = session.scalars(
        select(License.license_id)
        .where(License.name == DEMO_LICENSE_NAME, License.attributes.contains({_MARKER: True}))
        .order_by(License.license_id)
        .limit(1)
    ).first()
    if license_id is None:
        return None
    customers = session.scalars(
        select(User.user_id).where(User.license_id == license_id, User.user_id.like("synthetic-u%")).order_by(User.user_id)
    ).all()
    return DemoTenant(license_id=license_id, customer_ids=tuple(customers))


def create_tenant(session: Session, *, customers: int, now: datetime, seed: int) -> DemoTenant:
    """The demo license with ``customers`` shop customers and the ops team (the caller loads the history)."""
    license_ = License(name=DEMO_LICENSE_NAME, plan="enterprise", attributes={_MARKER: True})
    session.add(license_)
    session.flush()
    people = prepare_users(session, users=customers, license_id=license_.license_id, rng=random.Random(seed))
    for user_id, display_name in OPS_TEAM:
        platform.upsert_user(
            session,
            license_id=license_.license_id,
            user_id=user_id,
            fields={"display_name": display_name, "email": f"{user_id}@shop.example"},
            now=now,
        )
    return DemoTenant(license_id=license_.license_id, customer_ids=tuple(person.user_id for person in people))


def mint_keys(session: Session, *, license_id: int, now: datetime) -> DemoKeys:
    """Fresh read, ingest and admin keys; the ingest and admin keys of earlier runs are revoked."""
    earlier = session.scalars(
        select(ApiKey.api_key_id).where(
            ApiKey.name.in_((INGEST_KEY_NAME, ADMIN_KEY_NAME)),
            ApiKey.revoked_at.is_(None),
            (ApiKey.license_id == license_id) | ApiKey.license_id.is_(None),
        )
    ).all()
    for api_key_id in earlier:
        keys.revoke(session, api_key_id=api_key_id, now=now)
    read = keys.create_key(session, license_id=license_id, scopes=[Scope.READ], name=READ_KEY_NAME, new_token=new_token)
    ingest = keys.create_key(session, license_id=license_id, scopes=[Scope.INGEST], name=INGEST_KEY_NAME, new_token=new_token)
    admin = keys.create_key(session, license_id=None, scopes=[], admin=True, name=ADMIN_KEY_NAME, new_token=new_token)
    return DemoKeys(read=read.token, ingest=ingest.token, admin=admin.token, admin_key_id=admin.api_key_id)


def revoke_key(session: Session, *, api_key_id: int, now: datetime) -> None:
    keys.revoke(session, api_key_id=api_key_id, now=now)
