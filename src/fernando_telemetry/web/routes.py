"""The dashboard's routes: sign-in and sign-out, one page per view, the JSON data the pages refresh from, and
the plotly.js bundle. Pages are HTML rendered on the server; charts are drawn by static JS. Imports services
and core.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from fernando_telemetry.core.keys import Principal
from fernando_telemetry.services import tenancy
from fernando_telemetry.web import signin
from fernando_telemetry.web.page import Page, PageRequest
from fernando_telemetry.web.pages import alerts, events, kpis, metrics, overview, rules, services, traces
from fernando_telemetry.web.session import SessionData, new_csrf_token, new_session_id
from fernando_telemetry.web.signin import Viewer

__all__ = [
    "NAV",
    "PAGES",
    "REFRESH_INTERVAL_S",
    "data_response",
    "page_response",
    "plotly_bundle_path",
    "router",
    "sign_in_redirect",
]

router = APIRouter(include_in_schema=False)

REFRESH_INTERVAL_S = 30
"""How often an open page fetches its data again."""

PAGES: dict[str, Callable[[PageRequest], Page]] = {
    "overview": overview.build,
    "services": services.build,
    "traces": traces.build,
    "events": events.build,
    "metrics": metrics.build,
    "kpis": kpis.build,
    "alerts": alerts.build,
    "rules": rules.build,
}
FORMS = {
    "services": "services/_form.html",
    "traces": "traces/_form.html",
    "events": "events/_form.html",
    "metrics": "metrics/_form.html",
    "kpis": "kpis/_form.html",
    "overview": "overview/_form.html",
    "alerts": None,
    "rules": None,
}
NAV: list[tuple[str, str, str]] = [
    ("overview", "Overview", "/"),
    ("services", "Services", "/ui/services"),
    ("traces", "Traces", "/ui/traces"),
    ("events", "Events", "/ui/events"),
    ("metrics", "Metrics", "/ui/metrics"),
    ("kpis", "KPIs", "/ui/kpis"),
    ("alerts", "Alerts", "/ui/alerts"),
    ("rules", "Rules", "/ui/rules"),
]
SIGN_IN_REASONS = {
    "signed_out": None,
    "invalid": "Your sign-in is no longer valid: sign in again.",
    "revoked": "The API key you signed in with has been revoked: sign in with another key.",
    "scope": "The API key you signed in with no longer has the read scope.",
}


def _templates(request: Request) -> Any:
    return request.app.state.dashboard.templates


def _render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    html = _templates(request).get_template(template).render({"request": request, **context})
    return HTMLResponse(html, status_code=status_code)


def _base_context(request: Request, viewer: Viewer, name: str) -> dict[str, Any]:
    return {
        "viewer": viewer,
        "csrf_token": viewer.csrf_token,
        "nav": NAV,
        "active": name,
        "q": dict(request.query_params),
        "refresh_interval_s": REFRESH_INTERVAL_S,
    }


def _scope(principal: Principal) -> None:
    # a license key's transactions run under row-level security for its license
    tenancy.enter(principal)


def _build(request: Request, viewer: Viewer, builder: Callable[..., Page], *args: Any, refresh: bool = False) -> Page:
    _scope(viewer.principal)
    query = request.query_params.multi_items()
    with request.app.state.sessions.begin() as session:
        page_request = PageRequest(
            session, viewer.principal, datetime.now(UTC), tuple(query), refresh=refresh, cursor_key=request.app.state.cursor_key
        )
        return builder(page_request, *args)


def page_response(
    request: Request, name: str, builder: Callable[..., Page], *args: Any, data_path: str | None = None
) -> Response:
    """Render a page (blocking). ``data_path`` is where the page refreshes from (default: its own path under
    ``/ui/data``, with the same query string)."""
    viewer = signin.viewer(request)
    context = _base_context(request, viewer, name)
    try:
        page = _build(request, viewer, builder, *args)
    except (InvalidInput, Forbidden) as error:
        context.update(title=name.capitalize(), error=error, form=FORMS.get(name), charts={})
        return _render(request, "error.html", context, status_code=400 if isinstance(error, InvalidInput) else 403)
    except NotFound as error:
        context.update(title="Not found", error=error, form=None, charts={})
        return _render(request, "error.html", context, status_code=404)
    if data_path is None:
        data_path = "/ui/data/overview" if request.url.path == "/" else request.url.path.replace("/ui/", "/ui/data/", 1)
        if request.url.query:
            data_path += "?" + request.url.query
    context.update(page.context)
    refresh_url = data_path if page.refresh and data_path else None
    context.update(title=page.title, charts=page.charts, fragments=page.fragments, data_url=refresh_url)
    return _render(request, page.template, context, status_code=page.status_code)


def data_response(request: Request, name: str, builder: Callable[..., Page], *args: Any) -> Response:
    viewer = signin.viewer(request)
    page = _build(request, viewer, builder, *args, refresh=True)
    context = {"request": request, **_base_context(request, viewer, name), **page.context, "charts": page.charts}
    templates = _templates(request)
    fragments = {key: templates.get_template(template).render(context) for key, template in page.fragments.items()}
    return JSONResponse({"generated_at": datetime.now(UTC).isoformat(), "charts": page.charts, "fragments": fragments})


# --- pages ------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request) -> Response:
    return page_response(request, "overview", overview.build)


@router.get("/ui", response_class=HTMLResponse)
def ui_root() -> Response:
    return RedirectResponse("/", status_code=303)


@router.get("/ui/traces/{trace_id}", response_class=HTMLResponse)
def trace_page(request: Request, trace_id: str) -> Response:
    return page_response(request, "traces", traces.build_detail, trace_id)


@router.get("/ui/data/{name}")
def page_data(request: Request, name: str) -> Response:
    builder = PAGES.get(name)
    if builder is None:
        raise NotFound(f"no dashboard page {name[:40]!r}")
    return data_response(request, name, builder)


# --- sign-in ------------------------------------------------------------------------------------------


@router.get("/ui/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    data, new = signin.anonymous_session(request)
    reason = request.query_params.get("reason")
    response = _render(
        request,
        "login.html",
        {
            "csrf_token": data.csrf_token,
            "next": signin.safe_next(request.query_params.get("next")),
            "notice": SIGN_IN_REASONS.get(reason or "signed_out"),
            "error": None,
            "title": "Sign in",
        },
    )
    if new:
        signin.set_session_cookie(request, response, data)
    return response


SIGN_IN_REFUSED = "Sign-in refused: this API key is not valid."
"""One message for an unknown and a revoked key, so a sign-in does not tell which keys once existed."""


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form, data = await signin.checked_form(request)
    token = str(form.get("api_key") or "").strip()
    target = signin.safe_next(str(form.get("next") or "/"))
    failures = request.app.state.dashboard.sign_in_failures
    address = request.client.host if request.client else ""
    wait_s = failures.wait_s(address, 1, now_s=time.monotonic())
    if wait_s > 0:
        return _sign_in_refused(request, data, target, "Too many refused sign-ins from this address: wait a minute.", 429, wait_s)
    try:
        await run_in_threadpool(signin.check_key, request, token)
    except (Unauthorized, Forbidden) as error:
        failures.try_take(address, 1, now_s=time.monotonic())
        message = SIGN_IN_REFUSED if isinstance(error, Unauthorized) else f"Sign-in refused: {error.message}."
        if isinstance(error, Unauthorized) and not token:
            message = "Sign-in refused: enter an API key with the read scope."
        return _sign_in_refused(request, data, target, message, 403 if isinstance(error, Forbidden) else 401)
    response = RedirectResponse(target, status_code=303)
    session = SessionData(csrf_token=new_csrf_token(), api_key=token, session_id=new_session_id())
    signin.set_session_cookie(request, response, session)
    return response


def _sign_in_refused(
    request: Request, data: SessionData, target: str, message: str, status_code: int, retry_after_s: float | None = None
) -> Response:
    context = {"csrf_token": data.csrf_token, "next": target, "notice": None, "error": message, "title": "Sign in"}
    response = _render(request, "login.html", context, status_code=status_code)
    if retry_after_s is not None:
        response.headers["retry-after"] = str(max(1, math.ceil(retry_after_s)))
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    _, data = await signin.checked_form(request)
    if data.session_id is not None:
        # the cookie is signed and could be replayed until it expires: remember that this session ended
        request.app.state.dashboard.signed_out.sign_out(data.session_id, now_s=time.monotonic())
    response = RedirectResponse("/ui/login", status_code=303)
    signin.set_session_cookie(request, response, SessionData(csrf_token=new_csrf_token()))
    return response


# --- the charting library -------------------------------------------------------------------------------


def plotly_bundle_path() -> Path:
    """``plotly.min.js`` as shipped inside the installed ``plotly`` package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed: pip install plotly")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


@functools.cache
def _plotly_bundle() -> tuple[bytes, bytes, str]:
    raw = plotly_bundle_path().read_bytes()
    return raw, gzip.compress(raw, compresslevel=6), '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


@router.get("/ui/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    raw, compressed, etag = _plotly_bundle()
    headers = {"ETag": etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(compressed, media_type="text/javascript", headers={**headers, "Content-Encoding": "gzip"})
    return Response(raw, media_type="text/javascript", headers=headers)


def _page_route(name: str) -> None:
    builder = PAGES[name]

    def page(request: Request) -> Response:
        return page_response(request, name, builder)

    page.__name__ = f"{name}_page"
    router.add_api_route(f"/ui/{name}", page, methods=["GET"], response_class=HTMLResponse)


for _name in ("services", "traces", "events", "metrics", "kpis", "alerts", "rules"):
    _page_route(_name)


def sign_in_redirect(request: Request, reason: str) -> Response:
    """Where a signed-out visitor goes: the sign-in form (pages) or a 401 (data endpoints)."""
    if request.url.path.startswith("/ui/data/"):
        return JSONResponse(
            {"error": {"code": "signed_out", "message": "sign in to the dashboard again", "details": []}}, status_code=401
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = {"next": target}
    if reason != "signed_out":
        query["reason"] = reason
    return RedirectResponse("/ui/login?" + urlencode(query), status_code=303)
