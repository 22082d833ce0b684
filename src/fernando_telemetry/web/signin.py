"""Who is looking at the dashboard: the signed-in key read from the session cookie and checked against the
database on every request, the CSRF check of forms, and the cookie written on the way out.
Imports services and core.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from fernando_telemetry.core.errors import Forbidden, Unauthorized
from fernando_telemetry.core.keys import Principal, Scope, display_prefix
from fernando_telemetry.services import keys, tenancy
from fernando_telemetry.web.session import COOKIE_NAME, CSRF_FIELD, SessionCodec, SessionData, new_csrf_token, same_token

__all__ = [
    "CsrfRejected",
    "SignInRequired",
    "Viewer",
    "anonymous_session",
    "check_key",
    "codec_of",
    "checked_form",
    "current_session",
    "safe_next",
    "set_session_cookie",
    "viewer",
]


class SignInRequired(Exception):
    """No valid sign-in: pages redirect to the sign-in form, data endpoints answer 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class CsrfRejected(Exception):
    """A form arrived without the session's CSRF token (or from another origin)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in key: its principal, the session's CSRF token and a label safe to show."""

    principal: Principal
    csrf_token: str
    key_label: str


def codec_of(request: Request) -> SessionCodec:
    return request.app.state.dashboard.codec


def current_session(request: Request) -> SessionData | None:
    return codec_of(request).loads(request.cookies.get(COOKIE_NAME))


def check_key(request: Request, token: str) -> Principal:
    """The principal of ``token`` if it may read (blocking): ``Unauthorized`` or ``Forbidden`` otherwise."""
    with tenancy.unscoped(), request.app.state.sessions.begin() as session:
        principal = keys.authenticate(session, token=token, now=datetime.now(UTC))
    keys.require(principal, Scope.READ)
    return principal


def viewer(request: Request) -> Viewer:
    """The signed-in viewer (blocking: call from a worker thread); ``SignInRequired`` when there is none."""
    data = current_session(request)
    if data is None or data.api_key is None or data.session_id is None:
        raise SignInRequired("signed_out")
    if request.app.state.dashboard.signed_out.is_signed_out(data.session_id, now_s=time.monotonic()):
        raise SignInRequired("signed_out")
    try:
        principal = check_key(request, data.api_key)
    except Unauthorized as error:
        raise SignInRequired("revoked" if "revoked" in error.message else "invalid") from None
    except Forbidden:
        raise SignInRequired("scope") from None
    return Viewer(principal=principal, csrf_token=data.csrf_token, key_label=display_prefix(data.api_key) + "…")


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc == request.headers.get("host", request.url.netloc)


async def checked_form(request: Request) -> tuple[FormData, SessionData]:
    """The posted form once its CSRF token matches the session cookie's; ``CsrfRejected`` otherwise."""
    form = await request.form()
    data = current_session(request)
    presented = form.get(CSRF_FIELD)
    if data is None or not isinstance(presented, str) or not same_token(data.csrf_token, presented) or not _same_origin(request):
        raise CsrfRejected()
    return form, data


def set_session_cookie(request: Request, response: Response, data: SessionData) -> None:
    response.set_cookie(
        COOKIE_NAME,
        codec_of(request).dumps(data),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def anonymous_session(request: Request) -> tuple[SessionData, bool]:
    """The visitor's session (a fresh anonymous one when there is none); True when it is new and must be set."""
    data = current_session(request)
    if data is None:
        return SessionData(csrf_token=new_csrf_token()), True
    return data, False


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no scheme, no host, no ``//``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target
