"""Silences: create, list, get, change and expire them, and apply them to open alerts.

A silence in force (``starts_at <= now < ends_at``, not expired) makes every open alert it matches
``suppressed``; when it ends (or is expired by hand) the alert returns to ``active``, or to
``acknowledged`` when someone acknowledged it meanwhile. A license's silences match that license's
alerts; a platform-wide silence (``license_id`` NULL, admin keys only) matches every alert. Creating,
changing or expiring a silence applies it at once; the evaluator applies silences that start or end by
the clock on its next pass. ``license_id`` arguments are the license the caller may see (None = all).
Imports storage, core, ``services.alerts``, ``services.alert_lifecycle`` (every status change) and
``services.quotas``. The session-level functions never commit; the use cases at the end (``open_silence``,
``read_silences``, ``read_silence``, ``change_silence``, ``end_silence``) take ``sessions`` and a ``Caller`` and own
their transaction and scope check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from fernando_telemetry.core.alert_lifecycle import Action
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.core.enums import AlertStatus
from fernando_telemetry.core.errors import Conflict, InvalidInput, NotFound, field_problem
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS, Quotas
from fernando_telemetry.core.silence_matchers import Matcher, matches_all, parse_matchers
from fernando_telemetry.services import alert_lifecycle, alerts, audit
from fernando_telemetry.services import quotas as quota
from fernando_telemetry.storage.models import Alert, License, Silence

__all__ = [
    "ActiveSilence",
    "DEFAULT_LIMIT",
    "MAX_COMMENT_CHARS",
    "MAX_LIMIT",
    "STATES",
    "SilenceChange",
    "SilencePage",
    "SilenceView",
    "change_silence",
    "create",
    "end_silence",
    "expire",
    "get",
    "in_force",
    "list_silences",
    "open_silence",
    "read_silence",
    "read_silences",
    "reconcile",
    "update",
]

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_COMMENT_CHARS = 2000
STATES = ("pending", "active", "expired")
_UNSET: Any = object()


@dataclass(frozen=True)
class SilenceView:
    silence_id: int
    license_id: int | None
    matchers: list[dict[str, str]]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str | None
    expired_at: datetime | None
    created_at: datetime
    state: str
    """pending (starts later), active, or expired (ended, or expired by hand)"""
    alerts_changed: int = 0
    """open alerts this call suppressed or released (create, update, expire)"""


@dataclass(frozen=True)
class SilencePage:
    silences: list[SilenceView]
    next_offset: int | None


@dataclass(frozen=True)
class ActiveSilence:
    silence_id: int
    license_id: int | None
    matchers: tuple[Matcher, ...]
    ends_at: datetime

    def covers(self, alert: Alert) -> bool:
        if self.license_id is not None and alert.license_id != self.license_id:
            return False
        return matches_all(self.matchers, alerts.labels_of(alert))


@dataclass(frozen=True)
class SilenceChange:
    """An open alert a silence suppressed (``to_status`` suppressed) or released (active or acknowledged)."""

    alert: Alert
    from_status: str
    to_status: str
    silence_id: int | None


def _state(silence: Silence, now: datetime) -> str:
    if silence.expired_at is not None or silence.ends_at <= now:
        return "expired"
    return "pending" if silence.starts_at > now else "active"


def _view(silence: Silence, now: datetime, changed: int = 0) -> SilenceView:
    return SilenceView(
        silence_id=silence.silence_id,
        license_id=silence.license_id,
        matchers=[dict(item) for item in silence.matchers],
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        expired_at=silence.expired_at,
        created_at=silence.created_at,
        state=_state(silence, now),
        alerts_changed=changed,
    )


def _checked(
    *,
    matchers: Any,
    starts_at: datetime | None,
    ends_at: datetime | None,
    comment: str | None,
    now: datetime,
) -> tuple[tuple[Matcher, ...], datetime, datetime]:
    """Every problem of the fields at once, as ``InvalidInput`` details; the parsed matchers and times."""
    problems: list[dict[str, Any]] = []
    parsed: tuple[Matcher, ...] = ()
    try:
        parsed = parse_matchers(matchers)
    except InvalidInput as exc:
        problems += exc.details
    start = now if starts_at is None else starts_at
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment is not None and moment.tzinfo is None:
            problems.append(field_problem(name, "has no time zone; send UTC (Z) or an offset"))
    if ends_at is None:
        problems.append(field_problem("ends_at", "missing"))
    elif ends_at.tzinfo is not None and start.tzinfo is not None:
        if ends_at <= start:
            problems.append(field_problem("ends_at", "not after starts_at"))
        elif ends_at <= now:
            problems.append(field_problem("ends_at", "in the past: the silence would never be in force"))
    if comment is not None and (len(comment) > MAX_COMMENT_CHARS or "\x00" in comment):
        problems.append(field_problem("comment", f"longer than {MAX_COMMENT_CHARS} characters or holds NUL"))
    if problems:
        raise InvalidInput(
            "the silence is not valid: " + "; ".join(f"{p['field']}: {p['reason']}" for p in problems), details=problems
        )
    assert ends_at is not None
    return parsed, start, ends_at


def create(
    session: Session,
    *,
    caller: Caller,
    license_id: int | None,
    matchers: Any,
    ends_at: datetime | None,
    starts_at: datetime | None = None,
    comment: str | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> SilenceView:
    """A new silence of ``license_id`` (None: platform-wide), applied at once to the open alerts it matches; at
    most ``quotas.silences`` unexpired ones per license (``QuotaExceeded``). Audited as ``silence.create``
    by ``caller``, who is its ``created_by``."""
    created_by, now = caller.actor, caller.now()
    parsed, start, end = _checked(matchers=matchers, starts_at=starts_at, ends_at=ends_at, comment=comment, now=now)
    if license_id is not None and session.get(License, license_id) is None:
        raise InvalidInput(f"license_id: no license {license_id}", details=[field_problem("license_id", "unknown license")])
    quota.ensure_room(session, kind="silences", license_id=license_id, limit=quotas.silences, now=now)
    silence = Silence(
        license_id=license_id,
        matchers=[matcher.to_json() for matcher in parsed],
        starts_at=start,
        ends_at=end,
        created_by=created_by,
        comment=comment,
        created_at=now,
    )
    session.add(silence)
    session.flush()
    changes = reconcile(session, _open_alerts(session, license_id), now=now, actor=created_by)
    view = _view(silence, now, len(changes))
    _audit(
        session,
        caller,
        "silence.create",
        view,
        now=now,
        details={"matchers": view.matchers, "ends_at": view.ends_at.isoformat()},
    )
    return view


def _audit(
    session: Session, caller: Caller, action: str, view: SilenceView, *, now: datetime, details: Mapping[str, Any] | None = None
) -> None:
    # inside the change's transaction, so the API and the dashboard leave the same entry
    audit.record(
        session,
        actor=caller.actor,
        action=action,
        target_type="silence",
        target_id=view.silence_id,
        license_id=view.license_id,
        now=now,
        details=details,
    )


def _find(session: Session, *, silence_id: int, license_id: int | None, lock: bool = False) -> Silence:
    query = select(Silence).where(Silence.silence_id == silence_id)
    if license_id is not None:
        query = query.where(Silence.license_id == license_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    silence = session.scalars(query).one_or_none()
    if silence is None:
        raise NotFound(f"no silence {silence_id}" + ("" if license_id is None else f" in license {license_id}"))
    return silence


def get(session: Session, *, silence_id: int, license_id: int | None, now: datetime) -> SilenceView:
    return _view(_find(session, silence_id=silence_id, license_id=license_id), now)


def list_silences(
    session: Session,
    *,
    license_id: int | None,
    now: datetime,
    state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SilencePage:
    """Silences of the visible license, newest ending last first; ``state`` pending, active or expired."""
    if state is not None and state not in STATES:
        raise InvalidInput(
            f"state: {state[:40]!r} is not one of {', '.join(STATES)}",
            details=[field_problem("state", "unknown value", allowed=list(STATES))],
        )
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}, got {limit}",
            details=[field_problem("limit", f"not in 1..{MAX_LIMIT}")],
        )
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, got {offset}", details=[field_problem("offset", "negative")])
    query = select(Silence)
    if license_id is not None:
        query = query.where(Silence.license_id == license_id)
    if state == "expired":
        query = query.where(or_(Silence.expired_at.is_not(None), Silence.ends_at <= now))
    elif state is not None:
        query = query.where(Silence.expired_at.is_(None), Silence.ends_at > now)
        query = query.where(Silence.starts_at > now if state == "pending" else Silence.starts_at <= now)
    rows = session.scalars(
        query.order_by(Silence.ends_at.desc(), Silence.silence_id.desc()).limit(limit + 1).offset(offset)
    ).all()
    views = [_view(row, now) for row in rows[:limit]]
    return SilencePage(silences=views, next_offset=offset + limit if len(rows) > limit else None)


def update(
    session: Session,
    *,
    caller: Caller,
    silence_id: int,
    license_id: int | None,
    matchers: Any = _UNSET,
    starts_at: datetime | None = _UNSET,
    ends_at: datetime | None = _UNSET,
    comment: str | None = _UNSET,
) -> SilenceView:
    """Change a silence that has not ended; fields not given keep their value. Applied at once. Audited as
    ``silence.update`` (with the names of the fields given) by ``caller``."""
    actor, now = caller.actor, caller.now()
    given = {"matchers": matchers, "starts_at": starts_at, "ends_at": ends_at, "comment": comment}
    silence = _find(session, silence_id=silence_id, license_id=license_id, lock=True)
    if _state(silence, now) == "expired":
        raise Conflict(f"silence {silence_id} has ended; create a new one")
    parsed, start, end = _checked(
        matchers=silence.matchers if matchers is _UNSET else matchers,
        starts_at=silence.starts_at if starts_at is _UNSET else starts_at,
        ends_at=silence.ends_at if ends_at is _UNSET else ends_at,
        comment=silence.comment if comment is _UNSET else comment,
        now=now,
    )
    silence.matchers = [matcher.to_json() for matcher in parsed]
    silence.starts_at, silence.ends_at = start, end
    if comment is not _UNSET:
        silence.comment = comment
    session.flush()
    changes = reconcile(session, _open_alerts(session, silence.license_id), now=now, actor=actor)
    view = _view(silence, now, len(changes))
    _audit(
        session,
        caller,
        "silence.update",
        view,
        now=now,
        details={"fields": sorted(name for name, value in given.items() if value is not _UNSET)},
    )
    return view


def expire(session: Session, *, caller: Caller, silence_id: int, license_id: int | None) -> SilenceView:
    """End a silence now; the alerts it suppressed come back (unless another silence still matches them).
    Audited as ``silence.expire`` by ``caller``."""
    actor, now = caller.actor, caller.now()
    silence = _find(session, silence_id=silence_id, license_id=license_id, lock=True)
    if _state(silence, now) == "expired":
        raise Conflict(f"silence {silence_id} has already ended")
    silence.expired_at = now
    if silence.starts_at > now:
        silence.starts_at = now
    silence.ends_at = now
    session.flush()
    changes = reconcile(session, _open_alerts(session, silence.license_id), now=now, actor=actor)
    view = _view(silence, now, len(changes))
    _audit(session, caller, "silence.expire", view, now=now)
    return view


def in_force(session: Session, *, now: datetime) -> list[ActiveSilence]:
    """Silences in force at ``now``, longest-lasting first (the one an alert records as ``silenced_by``)."""
    rows = session.scalars(
        select(Silence)
        .where(Silence.ends_at > now, Silence.starts_at <= now, Silence.expired_at.is_(None))
        .order_by(Silence.ends_at.desc(), Silence.silence_id)
    ).all()
    # stored matchers were checked when written; a row edited by hand that no longer parses is skipped
    active = []
    for row in rows:
        try:
            matchers = parse_matchers(row.matchers)
        except InvalidInput:
            continue
        active.append(ActiveSilence(silence_id=row.silence_id, license_id=row.license_id, matchers=matchers, ends_at=row.ends_at))
    return active


def _open_alerts(session: Session, license_id: int | None) -> list[Alert]:
    query = select(Alert).where(Alert.status != AlertStatus.RESOLVED)
    if license_id is not None:
        query = query.where(Alert.license_id == license_id)
    return list(session.scalars(query.order_by(Alert.alert_id).with_for_update().execution_options(populate_existing=True)).all())


def reconcile(
    session: Session,
    open_alerts: Iterable[Alert],
    *,
    now: datetime,
    actor: str,
    silences: Sequence[ActiveSilence] | None = None,
) -> list[SilenceChange]:
    """Suppress the open alerts a silence in force covers, release the ones none covers; one event per change."""
    active = in_force(session, now=now) if silences is None else silences
    candidates = [alert for alert in open_alerts if alert.status != AlertStatus.RESOLVED]
    # a session scoped to one license (row-level security) cannot see platform-wide silences: it leaves the
    # alerts they hold to the evaluator, which sees every silence
    holders = {alert.silenced_by for alert in candidates if alert.silenced_by is not None}
    visible = set(session.scalars(select(Silence.silence_id).where(Silence.silence_id.in_(holders)))) if holders else set()
    changes: list[SilenceChange] = []
    for alert in candidates:
        if alert.silenced_by is not None and alert.silenced_by not in visible:
            continue
        covering = next((silence for silence in active if silence.covers(alert)), None)
        before = alerts.state_name(alert.status)
        if covering is not None and alert.status != AlertStatus.SUPPRESSED:
            alert_lifecycle.apply(
                session,
                alert,
                Action.SILENCE,
                actor=actor,
                now=now,
                silence_id=covering.silence_id,
                details={"silence_id": covering.silence_id},
            )
            changes.append(SilenceChange(alert, before, "suppressed", covering.silence_id))
        elif covering is not None and alert.silenced_by != covering.silence_id:
            previous = alert.silenced_by
            alert_lifecycle.apply(
                session,
                alert,
                Action.RESILENCE,
                actor=actor,
                now=now,
                silence_id=covering.silence_id,
                details={"silence_id": covering.silence_id, "previous_silence_id": previous},
            )
        elif covering is None and alert.status == AlertStatus.SUPPRESSED:
            previous = alert.silenced_by
            # an alert acknowledged while silenced comes back acknowledged; one nobody saw comes back active,
            # and is announced then if it fired while silenced
            action = Action.UNSILENCE_ACKNOWLEDGED if alert.acknowledged_at is not None else Action.UNSILENCE
            applied = alert_lifecycle.apply(session, alert, action, actor=actor, now=now, details={"silence_id": previous})
            changes.append(SilenceChange(alert, before, applied.step.to_state.value, previous))
    session.flush()
    return changes


def _ends_at(
    starts_at: datetime | None, ends_at: datetime | None, duration_minutes: int | None, now: datetime
) -> datetime | None:
    if duration_minutes is None:
        return ends_at
    if ends_at is not None:
        raise InvalidInput(
            "give ends_at or duration_minutes, not both", details=[field_problem("duration_minutes", "with ends_at")]
        )
    try:
        return (starts_at or now) + timedelta(minutes=duration_minutes)
    except OverflowError:
        raise InvalidInput(
            "starts_at plus duration_minutes is past the year 9999",
            details=[field_problem("duration_minutes", "out of range")],
        ) from None


def open_silence(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None,
    matchers: Any,
    starts_at: datetime | None,
    ends_at: datetime | None,
    duration_minutes: int | None = None,
    comment: str | None = None,
    quotas: Quotas = DEFAULT_QUOTAS,
) -> SilenceView:
    """The use case behind ``POST /api/v1/silences``: ``license_id`` checked against the caller's scope, the end taken
    from ``ends_at`` or ``duration_minutes`` after the start (or now), then ``create`` in one transaction."""
    license_id = caller.visible_license(license_id)
    now = caller.now()
    ends_at = _ends_at(starts_at, ends_at, duration_minutes, now)
    # the clock read once: the duration and the silence's created_at count from the same instant
    pinned = replace(caller, clock=lambda: now)
    with sessions.begin() as session:
        return create(
            session,
            caller=pinned,
            license_id=license_id,
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            comment=comment,
            quotas=quotas,
        )


def read_silences(
    sessions: sessionmaker[Session],
    *,
    caller: Caller,
    license_id: int | None = None,
    state: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SilencePage:
    """The use case behind ``GET /api/v1/silences``."""
    visible = caller.visible_license(license_id)
    with sessions() as session:
        return list_silences(session, license_id=visible, now=caller.now(), state=state, limit=limit, offset=offset)


def read_silence(sessions: sessionmaker[Session], *, caller: Caller, silence_id: int) -> SilenceView:
    """The use case behind ``GET /api/v1/silences/{id}``."""
    with sessions() as session:
        return get(session, silence_id=silence_id, license_id=caller.visible_license(), now=caller.now())


def change_silence(sessions: sessionmaker[Session], *, caller: Caller, silence_id: int, **changes: Any) -> SilenceView:
    """The use case behind ``PATCH /api/v1/silences/{id}``: ``changes`` holds only the fields given (see ``update``)."""
    with sessions.begin() as session:
        return update(session, caller=caller, silence_id=silence_id, license_id=caller.visible_license(), **changes)


def end_silence(sessions: sessionmaker[Session], *, caller: Caller, silence_id: int) -> SilenceView:
    """The use case behind ``POST /api/v1/silences/{id}/expire`` and ``DELETE /api/v1/silences/{id}``."""
    with sessions.begin() as session:
        return expire(session, caller=caller, silence_id=silence_id, license_id=caller.visible_license())
