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

from fernando_telemetry.web import actions, rendering, routes
from fernando_telemetry.web.headers import SecurityHeaders
from fernando_telemetry.web.session import SessionCodec
from fernando_telemetry.web.signin import CsrfRejected, SignInRequired

__all__ = ["Dashboard", "install_dashboard"]


@dataclass(frozen=True)
class Dashboard:
    """What the dashboard's routes share, kept on ``app.state.dashboard``."""

    codec: SessionCodec
    templates: Environment


def install_dashboard(app: FastAPI, *, secret_key: str) -> None:
    """Serve the dashboard from ``app``; ``secret_key`` signs the session cookies."""
    app.state.dashboard = Dashboard(codec=SessionCodec(secret_key), templates=rendering.environment())
    app.add_middleware(SecurityHeaders)
    app.include_router(routes.router)
    app.include_router(actions.router)
    app.mount("/ui/static", StaticFiles(directory=rendering.STATIC_DIR), name="dashboard-static")

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return routes.sign_in_redirect(request, exc.reason)

    @app.exception_handler(CsrfRejected)
    async def _csrf(request: Request, exc: CsrfRejected) -> Response:
        html = app.state.dashboard.templates.get_template("csrf.html").render({"title": "Form refused"})
        return HTMLResponse(html, status_code=403)
