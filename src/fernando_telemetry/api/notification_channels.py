"""Notification channel routes: ``/api/v1/notification-channels`` (list, create), ``/{name}`` (get, change,
delete) and ``/{name}/test`` (send a test message now and answer how it went).

A license key manages its own license's channels; an admin key manages the platform's channels (for
platform-wide rules), or a license's with ``license_id``. Secret fields are only ever answered masked.
Imports services and core.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.api.deps import ReadCaller
from fernando_telemetry.api.query_params import integer
from fernando_telemetry.core.errors import InvalidInput, field_problem
from fernando_telemetry.services import channel_tests, notification_channels
from fernando_telemetry.services.notification_channels import NotificationSetup

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/notification-channels", tags=["notification channels"])

_NAME = Path(min_length=1, max_length=100, description="The channel's name")
_LICENSE = "Admin keys: the license whose channels these are; without it, the platform's channels (listing: every license's)"
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key lacks the read scope, or names another license"},
}
_ONE_ERRORS: dict[int | str, dict[str, Any]] = {**_AUTH_ERRORS, 404: {"description": "No channel of that name in the license"}}
_WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ONE_ERRORS,
    400: {"description": "The channel is not valid: `details` lists every problem with its `field` and `reason`"},
    422: {"description": "The body is not a JSON object"},
}

_EXAMPLES = {
    "email": {
        "summary": "Email (the server's SMTP defaults)",
        "value": {"name": "ops-email", "type": "email", "to": ["ops@example.com"]},
    },
    "email-own-smtp": {
        "summary": "Email through its own SMTP server",
        "value": {
            "name": "email",
            "type": "email",
            "to": ["oncall@example.com", "cto@example.com"],
            "from": "alerts@example.com",
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
            "smtp_security": "starttls",
            "smtp_username": "alerts@example.com",
            "smtp_password": "app-password",
        },
    },
    "slack": {
        "summary": "Slack incoming webhook",
        "value": {"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX"},
    },
    "webhook": {
        "summary": "Signed webhook, Alertmanager format",
        "value": {
            "name": "pager",
            "type": "webhook",
            "url": "https://example.com/alertmanager-hook?token=abc",
            "secret": "6b1f0c2e9a7d4e3f8c5b2a1d0e9f8a7b",
            "format": "alertmanager",
            "send_resolved": True,
        },
    },
}


class ChannelOut(BaseModel):
    """A channel; besides these, the fields of its type (``to``, ``smtp_host``, ``webhook_url``, ``url``,
    ``format``, ...), secret ones masked (``https://hooks.slack.com/…****``, ``****``)."""

    model_config = ConfigDict(extra="allow")

    channel_id: int
    license_id: int | None = Field(description="null: a platform channel, used by platform-wide rules")
    name: str
    type: str = Field(description="email, slack or webhook")
    send_resolved: bool = Field(description="Also notify when an alert resolves")
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelListOut(BaseModel):
    notification_channels: list[ChannelOut] = Field(description="By license (platform first), then name")


class TestResultOut(BaseModel):
    ok: bool
    http_status: int | None = Field(description="The receiver's HTTP status (Slack, webhooks)")
    smtp_reply: str | None = Field(description="The SMTP server's last reply (email), e.g. `250 OK`")
    error: str | None
    latency_ms: float | None


def _setup(request: Request) -> NotificationSetup:
    return request.app.state.notifications


def _license(requested: str | None) -> int | None:
    return integer(requested, parameter="license_id", minimum=1)


def _out(view: notification_channels.ChannelView) -> ChannelOut:
    return ChannelOut.model_validate(view.as_dict())


@router.get(
    "",
    response_model=ChannelListOut,
    responses={**_AUTH_ERRORS, 400: {"description": "A malformed license_id"}},
    summary="List notification channels",
)
def list_channels(
    request: Request, caller: ReadCaller, license_id: str | None = Query(None, description=_LICENSE)
) -> ChannelListOut:
    views = notification_channels.read_channels(request.app.state.sessions, caller=caller, license_id=_license(license_id))
    return ChannelListOut(notification_channels=[_out(view) for view in views])


@router.post(
    "",
    response_model=ChannelOut,
    status_code=201,
    responses={**_WRITE_ERRORS, 409: {"description": "A channel of that name exists in the license"}},
    summary="Create a notification channel",
    description=(
        "Fields by type. **email**: `to` (list, required), `from`, and optionally an SMTP server of its own: "
        "`smtp_host`, `smtp_port`, `smtp_security` (`none`, `starttls`, `tls`), `smtp_username`, `smtp_password`, "
        "`tls_verify`, `ca_cert` (PEM); without `smtp_host` the server's `FERNANDO_TELEMETRY_SMTP_*` settings apply. "
        "**slack**: `webhook_url`. **webhook**: `url`, `secret` (signs each body: `X-Fernando-Signature`), "
        "`format` (`native` or `alertmanager`), `headers` (sent with each request). Every type: `send_resolved` "
        "(default true), `enabled` (default true). Secret fields (`smtp_password`, `webhook_url`, `url`, `secret`, "
        "`headers`) are stored encrypted and answered masked."
    ),
)
def create_channel(
    request: Request,
    caller: ReadCaller,
    body: Annotated[dict[str, Any], Body(openapi_examples=_EXAMPLES)],
    license_id: str | None = Query(None, description=_LICENSE),
) -> ChannelOut:
    spec = dict(body)
    requested = integer(license_id, parameter="license_id", minimum=1)
    if "license_id" in spec:
        in_body = spec.pop("license_id")
        if in_body is not None and (isinstance(in_body, bool) or not isinstance(in_body, int)):
            raise InvalidInput("license_id must be an integer", details=[field_problem("license_id", "not an integer")])
        if requested is not None and in_body is not None and in_body != requested:
            raise InvalidInput(
                "license_id differs between the query and the body", details=[field_problem("license_id", "conflicting")]
            )
        requested = in_body if in_body is not None else requested
    view = notification_channels.create_channel(
        request.app.state.sessions,
        caller=caller,
        license_id=requested,
        spec=spec,
        box=_setup(request).box,
        targets=_setup(request).targets,
        quotas=request.app.state.quotas,
    )
    return _out(view)


@router.get("/{name}", response_model=ChannelOut, responses=_ONE_ERRORS, summary="One notification channel (secrets masked)")
def get_channel(
    request: Request, caller: ReadCaller, name: str = _NAME, license_id: str | None = Query(None, description=_LICENSE)
) -> ChannelOut:
    return _out(
        notification_channels.read_channel(request.app.state.sessions, caller=caller, name=name, license_id=_license(license_id))
    )


@router.patch(
    "/{name}",
    response_model=ChannelOut,
    responses=_WRITE_ERRORS,
    summary="Change a notification channel",
    description=(
        "Only the fields given change; `null` removes an optional field. A masked secret sent back as it was "
        "answered keeps the stored secret, so a channel can be read, edited and sent back whole. The name and "
        "the type cannot change."
    ),
)
def update_channel(
    request: Request,
    caller: ReadCaller,
    body: Annotated[dict[str, Any], Body(examples=[{"to": ["ops@example.com", "sre@example.com"], "send_resolved": False}])],
    name: str = _NAME,
    license_id: str | None = Query(None, description=_LICENSE),
) -> ChannelOut:
    scope = _license(license_id)
    changes = {key: value for key, value in body.items() if key not in ("channel_id", "license_id", "created_at", "updated_at")}
    view = notification_channels.change_channel(
        request.app.state.sessions,
        caller=caller,
        name=name,
        changes=changes,
        box=_setup(request).box,
        targets=_setup(request).targets,
        license_id=scope,
    )
    return _out(view)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={**_ONE_ERRORS, 409: {"description": "A rule still names the channel"}},
    summary="Delete a notification channel",
)
def delete_channel(
    request: Request, caller: ReadCaller, name: str = _NAME, license_id: str | None = Query(None, description=_LICENSE)
) -> Response:
    notification_channels.delete_channel(request.app.state.sessions, caller=caller, name=name, license_id=_license(license_id))
    return Response(status_code=204)


@router.post(
    "/{name}/test",
    response_model=TestResultOut,
    responses={**_ONE_ERRORS, 409: {"description": "The channel's secrets cannot be decrypted with this server's key"}},
    summary="Send a test message to a channel now",
    description=(
        "Sends a test notification (no alert behind it) and answers how it went: `ok`, the receiver's HTTP status "
        "or the SMTP server's reply, the error, the latency. A failed send is a 200 with `ok: false`. Nothing is "
        "written to the delivery log."
    ),
)
async def test_channel(
    request: Request, caller: ReadCaller, name: str = _NAME, license_id: str | None = Query(None, description=_LICENSE)
) -> TestResultOut:
    scope = _license(license_id)
    setup = _setup(request)

    def work() -> TestResultOut:
        result = channel_tests.send_channel_test(
            request.app.state.sessions,
            caller=caller,
            name=name,
            box=setup.box,
            notifier=setup.notifier,
            license_id=scope,
            external_url=setup.external_url,
        )
        fields = asdict(result)
        fields.pop("retryable", None)
        return TestResultOut(**fields)

    return await run_in_threadpool(work)
