"""Attacks on the HTTP surface, against the real app on PostgreSQL: instants at the edge of the calendar,
forged cursors, spans ending at u64 max, HTML in a metric name, a replayed cookie after sign-out, sign-in
floods and key probing, ``/docs`` assets, and clients that stall their body or headers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from sqlalchemy import Engine, text

from fernando_telemetry.composition.http_server import uvicorn_config
from fernando_telemetry.composition.wiring import Wiring, build
from fernando_telemetry.services import keys
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.web.headers import SECURITY_HEADERS
from fernando_telemetry.web.routes import PAGES
from tests.helpers import add_metric
from tests.ingest_fixtures import Tenant, make_tenant

EDGES = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00")
TIME_PARAMETERS = ("from", "to")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _sign_in(client: TestClient, key: str) -> httpx.Response:
    token = _csrf_of(client.get("/ui/login").text)
    return client.post("/ui/login", data={"csrf_token": token, "api_key": key, "next": "/"}, follow_redirects=False)


def _get_routes(client: TestClient) -> list[str]:
    """Every GET path of the API that takes ``from`` or ``to``, path parameters filled with harmless values."""
    paths = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        get = operations.get("get")
        if get is None or not {parameter["name"] for parameter in get.get("parameters", [])} & set(TIME_PARAMETERS):
            continue
        paths.append(re.sub(r"\{[^}]+\}", lambda match: "1" if "id" in match.group(0) else "x", path))
    return paths


class TestCalendarEdges:
    def test_edge_instants_on_every_api_route_are_400_naming_the_parameter(
        self, client: TestClient, committed_engine: Engine
    ) -> None:
        """Years 1 and 9999 (with offsets that push them past the calendar) in from/to are refused, never a 500."""
        tenant = make_tenant(committed_engine)
        routes = _get_routes(client)
        assert len(routes) >= 10, routes
        refused = []
        for path in routes:
            for parameter in TIME_PARAMETERS:
                for edge in EDGES:
                    response = client.get(path, params={parameter: edge}, headers=_auth(tenant.read_key))
                    assert response.status_code < 500, (path, parameter, edge, response.text)
                    if response.status_code == 400:
                        details = response.json()["error"]["details"]
                        if {"field": parameter, "reason": "out of range"} in details:
                            refused.append((path, parameter))
        print(f"{len(set(refused))} route/parameter pairs refused edge instants over {len(routes)} routes")
        assert len(set(refused)) >= 2 * 8, sorted(set(refused))

    def test_edge_instants_on_dashboard_pages_are_400(self, client: TestClient, committed_engine: Engine) -> None:
        """Every dashboard page and its data endpoint answer 400 for from/to at the edge of the calendar."""
        tenant = make_tenant(committed_engine)
        assert _sign_in(client, tenant.read_key).status_code == 303
        for name in PAGES:
            for path in ("/" if name == "overview" else f"/ui/{name}", f"/ui/data/{name}"):
                for parameter in TIME_PARAMETERS:
                    for edge in EDGES[:2]:
                        response = client.get(path, params={parameter: edge})
                        assert response.status_code < 500, (path, parameter, edge, response.text[:300])
                        if name not in ("alerts", "rules", "kpis"):  # pages without a time window ignore from/to
                            assert response.status_code == 400, (path, parameter, edge, response.status_code)

    def test_a_forged_cursor_is_400(self, client: TestClient, committed_engine: Engine) -> None:
        """A cursor checksummed with the constant that once sat in the source, holding year 9999, is refused."""
        tenant = make_tenant(committed_engine)
        far = (datetime(9999, 12, 31, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
        payload = json.dumps([1, far, str(uuid.uuid4()), far, "0" * 16], separators=(",", ":")).encode()
        checksum = hashlib.blake2b(payload, digest_size=8, key=b"fernando-telemetry keyset cursor").digest()
        forged = base64.urlsafe_b64encode(payload + checksum).decode().rstrip("=")
        for path in ("/api/v1/events", "/api/v1/alerts", "/api/v1/kpis"):
            response = client.get(path, params={"cursor": forged}, headers=_auth(tenant.read_key))
            assert response.status_code == 400, (path, response.text)
            assert response.json()["error"]["details"][0]["field"] == "cursor"

    def test_a_span_ending_at_u64_max_is_a_rejected_item_naming_the_field(
        self, client: TestClient, committed_engine: Engine
    ) -> None:
        """OTLP spans whose end is nanosecond u64 max (year 2554) are rejected one by one; the good span lands."""
        tenant = make_tenant(committed_engine)
        trace_id = uuid.uuid4()
        request = ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        start_ns = time.time_ns()
        for name, end_ns in (("good", start_ns + 1000), ("u64-max", 2**64 - 1)):
            span = spans.add()
            span.trace_id, span.span_id, span.name = trace_id.bytes, uuid.uuid4().bytes[:8], name
            span.start_time_unix_nano = start_ns
            span.end_time_unix_nano = end_ns
        response = client.post(
            "/v1/traces",
            content=request.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", **_auth(tenant.ingest_key)},
        )
        assert response.status_code == 200, response.text
        partial = ExportTraceServiceResponse.FromString(response.content).partial_success
        assert partial.rejected_spans == 1
        assert "end_time_unix_nano" in partial.error_message
        with committed_engine.connect() as connection:
            names = connection.execute(
                text("SELECT operation_name FROM traces WHERE trace_id = :t"), {"t": trace_id.hex}
            ).scalars()
            assert sorted(names) == ["good"]


class TestDashboardSession:
    def test_html_in_a_metric_name_is_escaped_in_the_chart(self, client: TestClient, committed_engine: Engine) -> None:
        """A metric named with an ``<a href>`` shows as text in the chart title and legend, not as a link."""
        tenant = make_tenant(committed_engine)
        name = '<a href="https://evil.example/">click</a>'
        with session_factory(committed_engine).begin() as session:
            add_metric(
                session, at=datetime.now(UTC) - timedelta(minutes=5), metric_name=name, value=1.0, license_id=tenant.license_id
            )
        assert _sign_in(client, tenant.read_key).status_code == 303
        answer = client.get("/ui/data/metrics", params={"metric": name, "range": "1h"})
        assert answer.status_code == 200, answer.text
        figure = answer.json()["charts"]["metric-series"]
        assert figure["layout"]["title"]["text"].startswith("&lt;a href=")
        assert all("<a" not in trace["name"] for trace in figure["data"])
        page = client.get("/ui/metrics", params={"metric": name, "range": "1h"}).text
        assert '<a href="https://evil.example/"' not in page

    def test_the_cookie_of_a_signed_out_session_no_longer_signs_in(self, client: TestClient, committed_engine: Engine) -> None:
        """Replaying the cookie held before sign-out leads to the sign-in form, not the dashboard."""
        tenant = make_tenant(committed_engine)
        assert _sign_in(client, tenant.read_key).status_code == 303
        old_cookie = client.cookies.get("ft_session")
        assert client.get("/", follow_redirects=False).status_code == 200
        token = _csrf_of(client.get("/").text)
        assert client.post("/ui/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
        client.cookies.clear()
        client.cookies.set("ft_session", old_cookie)
        replayed = client.get("/", follow_redirects=False)
        assert replayed.status_code == 303 and replayed.headers["location"].startswith("/ui/login")
        assert client.get("/ui/data/overview").status_code == 401

    def test_a_revoked_key_and_an_unknown_key_get_the_same_answer(self, client: TestClient, committed_engine: Engine) -> None:
        """Sign-in does not tell a key that once existed from one that never did."""
        tenant = make_tenant(committed_engine)
        with session_factory(committed_engine).begin() as session:
            key_id = session.execute(
                text("SELECT api_key_id FROM api_keys WHERE license_id = :l ORDER BY api_key_id DESC LIMIT 1"),
                {"l": tenant.license_id},
            ).scalar_one()
            keys.revoke(session, api_key_id=key_id, now=datetime.now(UTC))
        revoked = _sign_in(client, tenant.read_key)
        unknown = _sign_in(client, "ft_" + uuid.uuid4().hex)
        assert revoked.status_code == unknown.status_code == 401

        def message(response: httpx.Response) -> str:
            found = re.search(r'class="[^"]*error[^"]*"[^>]*>(.*?)<', response.text, re.S)
            assert found, response.text
            return found.group(1).strip()

        assert message(revoked) == message(unknown)
        assert "revoked" not in revoked.text

    def test_a_sign_in_flood_from_one_address_gets_429(self, client: TestClient, committed_engine: Engine) -> None:
        """After the burst of refused sign-ins, the address gets 429 with Retry-After, even with a valid key."""
        tenant = make_tenant(committed_engine)
        statuses = [_sign_in(client, "ft_" + uuid.uuid4().hex).status_code for _ in range(30)]
        assert statuses[0] == 401 and statuses[-1] == 429, statuses
        limited = _sign_in(client, tenant.read_key)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1


class TestDocs:
    def test_docs_load_only_local_assets_under_the_security_headers(self, client: TestClient) -> None:
        """``/docs`` names no other origin, carries the dashboard's headers, and its assets are served here."""
        response = client.get("/docs")
        assert response.status_code == 200
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", response.text), response.text
        for name, value in SECURITY_HEADERS:
            assert response.headers.get(name) == value, name
        assets = re.findall(r"(?:src|href)=[\"'](/[^\"']+)[\"']", response.text)
        assert any(asset.endswith(".js") for asset in assets) and any(asset.endswith(".css") for asset in assets), assets
        for asset in assets:
            served = client.get(asset)
            assert served.status_code == 200 and len(served.content) > 100, asset

    def test_docs_render_in_a_browser_under_the_csp(self, live_server: str) -> None:
        """Chromium draws the operations from the local swagger-ui with no console error (no CSP violation)."""
        import os

        from playwright.sync_api import sync_playwright

        from tests.web.test_dashboard_browser import CHROMIUM, require_chromium

        require_chromium(CHROMIUM, os.environ)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
            try:
                page = browser.new_page()
                errors: list[str] = []
                page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
                requested: list[str] = []
                page.on("request", lambda request: requested.append(request.url))
                page.goto(f"{live_server}/docs")
                page.wait_for_selector(".opblock", timeout=20_000)
                assert page.locator(".opblock").count() > 10
            finally:
                browser.close()
        assert errors == []
        assert all(url.startswith(live_server) or url.startswith("data:") for url in requested), requested


@pytest.fixture()
def bounded_server(running_wiring: Wiring) -> Iterator[tuple[str, int]]:
    """The app under uvicorn configured as ``serve`` does, with short body, header and response deadlines (the
    response deadline shorter than the body's, so a stalled body shows it is not counted against the server)."""
    settings = Settings(http_body_idle_timeout_s=1.5, http_header_timeout_s=1.5, http_response_timeout_s=1.0)
    wiring = build(settings, engine=running_wiring.app.state.engine)
    wiring.start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(wiring.app, settings, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(10)
        wiring.stop()


def _read_until_closed(sock: socket.socket, limit_s: float) -> bytes:
    sock.settimeout(limit_s)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        return received + b"<still open>"
    return received


class TestSlowClients:
    def test_a_stalled_body_gets_408_and_is_closed_while_others_are_answered(
        self, bounded_server: tuple[str, int], committed_engine: Engine
    ) -> None:
        """Half a body then silence: 408 and a closed connection; a probe request is answered meanwhile."""
        host, port = bounded_server
        tenant: Tenant = make_tenant(committed_engine)
        body = json.dumps({"events": [{"event_type": "user_action", "event_name": "x"}] * 20}).encode()
        stalled = socket.create_connection((host, port))
        started = time.monotonic()
        stalled.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {tenant.ingest_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body[: len(body) // 2]
        )
        probe = httpx.get(f"http://{host}:{port}/healthz", timeout=10)
        assert probe.status_code == 200
        answer = _read_until_closed(stalled, 30)
        print(f"stalled body answered after {time.monotonic() - started:.1f}s")
        stalled.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert not answer.endswith(b"<still open>")
        assert b"request_timeout" in answer

    def test_a_body_trickling_past_the_response_deadline_is_answered_by_the_route(
        self, bounded_server: tuple[str, int], committed_engine: Engine
    ) -> None:
        """A body sent in chunks 0.6 s apart for about 3 s (three times the 1 s response deadline, each gap under the
        1.5 s body deadline): the wait for the client is not the server's, so the route answers 200 and stores it."""
        host, port = bounded_server
        tenant: Tenant = make_tenant(committed_engine)
        name = "trickle-" + uuid.uuid4().hex[:8]
        body = json.dumps({"events": [{"event_type": "user_action", "event_name": name}] * 20}).encode()
        chunks = [body[i : i + len(body) // 5 + 1] for i in range(0, len(body), len(body) // 5 + 1)]
        slow = socket.create_connection((host, port))
        started = time.monotonic()
        slow.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Authorization: Bearer {tenant.ingest_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        for chunk in chunks:
            time.sleep(0.6)
            slow.sendall(chunk)
        answer = _read_until_closed(slow, 30)
        print(f"trickled body ({len(chunks)} chunks) answered after {time.monotonic() - started:.1f}s")
        slow.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        with committed_engine.connect() as connection:
            stored = connection.execute(text("SELECT count(*) FROM telemetry_events WHERE event_name = :n"), {"n": name})
            assert stored.scalar_one() == 20

    def test_partial_headers_are_cut_off(self, bounded_server: tuple[str, int]) -> None:
        """A request line and half a header, then silence: the connection is closed; a probe is answered meanwhile."""
        host, port = bounded_server
        slow = socket.create_connection((host, port))
        started = time.monotonic()
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaa")
        assert httpx.get(f"http://{host}:{port}/healthz", timeout=10).status_code == 200
        answer = _read_until_closed(slow, 30)
        print(f"partial headers cut off after {time.monotonic() - started:.1f}s")
        slow.close()
        assert answer == b""

    def test_headers_trickled_after_a_keep_alive_response_are_cut_off(self, bounded_server: tuple[str, int]) -> None:
        """One request answered, then the next one's headers a line at a time: the connection is closed anyway."""
        host, port = bounded_server
        slow = socket.create_connection((host, port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        slow.settimeout(10)
        first = slow.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for line in range(120):  # a minute of trickling at most
            readable, _, _ = select.select([slow], [], [], 0.5)
            if readable and slow.recv(65536) == b"":
                closed = True
                break
            try:
                slow.sendall(f"X-Trickle-{line}: 1\r\n".encode())
            except OSError:  # reset by the server
                closed = True
                break
        print(f"trickled headers cut off after {line} lines")
        slow.close()
        assert closed

    def test_a_client_gone_mid_body_logs_one_line(
        self, bounded_server: tuple[str, int], committed_engine: Engine, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that closes halfway through its body leaves one log line and no traceback."""
        host, port = bounded_server
        tenant = make_tenant(committed_engine)
        caplog.set_level("INFO")
        gone = socket.create_connection((host, port))
        gone.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {tenant.ingest_key}\r\nContent-Length: 100000\r\n\r\n".encode()
            + b'{"events": ['
        )
        time.sleep(0.3)
        gone.close()
        deadline = time.monotonic() + 10
        while not any("went away" in record.getMessage() for record in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(f"http://{host}:{port}/healthz", timeout=10).status_code == 200
        lines = [record for record in caplog.records if "went away" in record.getMessage()]
        assert len(lines) == 1, [record.getMessage() for record in caplog.records]
        assert not [record for record in caplog.records if record.exc_info], [record.getMessage() for record in caplog.records]
