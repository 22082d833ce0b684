"""The dashboard's pages that change things: one alert (acknowledge, assign, resolve, silence), ending a
silence, and the rule form (save, backtest). Every POST carries the session's CSRF token. Imports services
and core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from fernando_telemetry.core.errors import Conflict, InvalidInput, NotFound
from fernando_telemetry.core.quotas import DEFAULT_QUOTAS
from fernando_telemetry.services import alert_rules, tenancy
from fernando_telemetry.web import signin
from fernando_telemetry.web.page import Page, PageRequest
from fernando_telemetry.web.pages import alerts, rules
from fernando_telemetry.web.routes import data_response, page_response

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

T = TypeVar("T")


def _run(request: Request, work: Callable[[PageRequest], T]) -> T:
    """``work`` in one transaction of the signed-in key (blocking)."""
    viewer = signin.viewer(request)
    tenancy.enter(viewer.principal)
    with request.app.state.sessions.begin() as session:
        quotas = getattr(request.app.state, "quotas", DEFAULT_QUOTAS)
        return work(PageRequest(session, viewer.principal, datetime.now(UTC), (), quotas=quotas))


def _with_query(target: str, **query: str) -> str:
    separator = "&" if urlsplit(target).query else "?"
    return target + separator + urlencode(query)


def _posted(form: Any) -> dict[str, str]:
    return {key: value for key, value in form.items() if isinstance(value, str)}


# --- alerts -------------------------------------------------------------------------------------------


@router.get("/ui/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(request: Request, alert_id: int) -> Response:
    return page_response(request, "alerts", alerts.build_detail, alert_id)


@router.get("/ui/data/alerts/{alert_id}")
def alert_data(request: Request, alert_id: int) -> Response:
    return data_response(request, "alerts", alerts.build_detail, alert_id)


def _alert_action(request: Request, alert_id: int, action: str, posted: Mapping[str, str]) -> Response:
    if action not in alerts.ACTIONS:
        raise NotFound(f"no alert action {action[:40]!r}")
    failure: InvalidInput | Conflict | None = None
    try:
        _run(request, lambda page_request: alerts.act(page_request, alert_id=alert_id, action=action, form=posted))
    except (InvalidInput, Conflict) as error:
        failure = error
    if failure is not None:

        def with_error(page_request: PageRequest, wanted: int) -> Page:
            page = alerts.build_detail(page_request, wanted, action_error=failure)
            page.status_code = 409 if isinstance(failure, Conflict) else 400
            return page

        return page_response(request, "alerts", with_error, alert_id, data_path=f"/ui/data/alerts/{alert_id}")
    target = signin.safe_next(posted.get("return_to") or f"/ui/alerts/{alert_id}")
    return RedirectResponse(_with_query(target, done=action), status_code=303)


@router.post("/ui/alerts/{alert_id}/{action}")
async def alert_action(request: Request, alert_id: int, action: str) -> Response:
    form, _ = await signin.checked_form(request)
    return await run_in_threadpool(_alert_action, request, alert_id, action, _posted(form))


def _expire(request: Request, silence_id: int, posted: Mapping[str, str]) -> Response:
    try:
        _run(request, lambda page_request: alerts.expire_silence(page_request, silence_id=silence_id))
    except Conflict:
        pass  # it ended meanwhile: the list shows it gone either way
    target = signin.safe_next(posted.get("return_to") or "/ui/alerts")
    return RedirectResponse(_with_query(target, done="expire"), status_code=303)


@router.post("/ui/silences/{silence_id}/expire")
async def expire_silence(request: Request, silence_id: int) -> Response:
    form, _ = await signin.checked_form(request)
    return await run_in_threadpool(_expire, request, silence_id, _posted(form))


# --- rules --------------------------------------------------------------------------------------------


@router.get("/ui/rules/new", response_class=HTMLResponse)
def new_rule(request: Request) -> Response:
    return page_response(request, "rules", lambda page_request: rules.build_form(page_request, rules.form_from_rule(None)))


@router.get("/ui/rules/{rule_id}", response_class=HTMLResponse)
def edit_rule(request: Request, rule_id: int) -> Response:
    def build(page_request: PageRequest) -> Page:
        rule = alert_rules.get(page_request.session, rule_id=rule_id, scope=page_request.license_scope)
        return rules.build_form(page_request, rules.form_from_rule(rule), saved=page_request.text("done") == "saved")

    return page_response(request, "rules", build)


def _rule_post(request: Request, rule_id: int | None, posted: Mapping[str, str]) -> Response:
    form = rules.form_from_post(rule_id, posted)
    if posted.get("action") == "backtest":

        def backtest(page_request: PageRequest) -> Page:
            result = rules.run_backtest(page_request, form)
            return rules.build_form(page_request, form, backtest=result, status_code=200 if result is not None else 400)

        return page_response(request, "rules", backtest, data_path="")
    saved = _run(request, lambda page_request: rules.save(page_request, form))
    if saved is not None:
        return RedirectResponse(f"/ui/rules/{saved.rule_id}?done=saved", status_code=303)
    conflict = "version" in form.errors or any("already" in message for message in form.errors.get("name", []))
    return page_response(
        request,
        "rules",
        lambda page_request: rules.build_form(page_request, form, status_code=409 if conflict else 400),
        data_path="",
    )


@router.post("/ui/rules/new", response_class=HTMLResponse)
async def create_rule(request: Request) -> Response:
    form, _ = await signin.checked_form(request)
    return await run_in_threadpool(_rule_post, request, None, _posted(form))


@router.post("/ui/rules/{rule_id}", response_class=HTMLResponse)
async def change_rule(request: Request, rule_id: int) -> Response:
    form, _ = await signin.checked_form(request)
    return await run_in_threadpool(_rule_post, request, rule_id, _posted(form))
