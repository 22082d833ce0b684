"""The web dashboard served at ``/``: sign-in with an API key, pages over the read services, charts drawn by
the plotly.js bundle of the ``plotly`` package, all assets local. Same layer as ``api``: imports services
and core, never storage.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment

from fernando_telemetry.core.ratelimit import KeyedRateLimiter
from fernando_telemetry.web import actions, api_docs, rendering, routes
from fernando_telemetry.web.headers import SecurityHeaders
from fernando_telemetry.web.session import SessionCodec, SignedOutSessions
from fernando_telemetry.web.signin import CsrfRejected, SignInRequired

__all__ = ["Dashboard", "install_dashboard"]


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard's routes share, kept on ``app.state.dashboard``."""

    codec: SessionCodec
    templates: Environment
    signed_out: SignedOutSessions
    sign_in_failures: KeyedRateLimiter
    """Refused sign-ins per client address; once its burst is spent, that address gets 429 until it refills."""


def install_dashboard(app: FastAPI, *, secret_key: str, sign_in_failures_per_minute: int = 10) -> None:
    """Serve the dashboard from ``app``; ``secret_key`` signs the session cookies; each client address may
    have ``sign_in_failures_per_minute`` sign-ins refused (in a burst, then at that rate; 0: no limit)."""
    app.state.dashboard = Dashboard(
        codec=SessionCodec(secret_key),
        templates=rendering.environment(),
        signed_out=SignedOutSessions(),
        sign_in_failures=KeyedRateLimiter(rate_per_s=sign_in_failures_per_minute / 60.0, burst=sign_in_failures_per_minute),
    )
    app.add_middleware(SecurityHeaders)
    app.include_router(routes.router)
    app.include_router(actions.router)
    app.include_router(api_docs.router)
    app.mount("/ui/static", StaticFiles(directory=rendering.STATIC_DIR), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return routes.sign_in_redirect(request, exc.reason)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        html = app.state.dashboard.templates.get_template("csrf.html").render({"title": "Form refused"})
        return HTMLResponse(html, status_code=403)
