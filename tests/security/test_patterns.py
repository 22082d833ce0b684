"""Attacks on user patterns and names, against real PostgreSQL and the real server.

A silence ``alertname =~ (a+)+b`` over an alert named ``aaaa…a!`` once held the server for longer each extra
``a`` (Python's backtracking ``re``): the attack runs against ``serve`` in its own process, and ``/healthz`` must
answer while the silence is created and while the scheduler's evaluation passes match it. Names that look the
same (NFC/NFD) are one name, and names nobody can see are refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from fernando_telemetry.core.patterns import MAX_PATTERN_CHARS
from fernando_telemetry.core.silence_matchers import matches_all, parse_matchers
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import Alert, AlertRule
from tests.alert_fixtures import add_alert
from tests.ingest_fixtures import Tenant, make_tenant

CONDITION = {"metric": "cpu_usage", "operator": ">", "threshold": 80}
EVIL = "(a+)+b"
NOT_MATCHED = "a" * 40 + "!"
"""Python's ``re`` needs about 2^40 steps to decide that ``(a+)+b`` does not match it."""
MATCHED = "a" * 40 + "b"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def serve(committed_url: str) -> Iterator[str]:
    """``fernando-telemetry serve`` in its own process on the committed database, evaluating alerts twice a second."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": committed_url,
        "FERNANDO_TELEMETRY_DATA_DIR": tempfile.mkdtemp(prefix="ft-sec-patterns-"),
        "FERNANDO_TELEMETRY_ALERT_EVALUATION_INTERVAL_S": "0.5",
        "FERNANDO_TELEMETRY_HOST_METRICS_INTERVAL_S": "0",
        "FERNANDO_TELEMETRY_KPI_INTERVAL_S": "0",
        "FERNANDO_TELEMETRY_ROLLUP_REFRESH_INTERVAL_S": "0",
        "FERNANDO_TELEMETRY_OTLP_GRPC_PORT": "0",
    }
    env.pop("FERNANDO_TELEMETRY_DATABASE_URL", None)
    command = [sys.executable, "-m", "fernando_telemetry", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}: {process.stdout.read() if process.stdout else ''}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("serve did not become ready")
            time.sleep(0.3)
        yield base_url
    finally:
        process.kill()
        process.wait(30)


def _probe(base_url: str) -> float:
    """Seconds ``/healthz`` took; fails the test when it does not answer 200 within 5 s."""
    started = time.monotonic()
    response = httpx.get(f"{base_url}/healthz", timeout=5)
    assert response.status_code == 200
    return time.monotonic() - started


def _status(engine: Engine, alert_id: int) -> str:
    with session_factory(engine)() as session:
        return str(session.scalars(select(Alert.status).where(Alert.alert_id == alert_id)).one())


def _open_alert(engine: Engine, rule_id: int) -> int:
    with session_factory(engine).begin() as session:
        rule = session.get(AlertRule, rule_id)
        assert rule is not None
        return add_alert(session, rule=rule, triggered_at=datetime.now(UTC)).alert_id


class TestSilencePatterns:
    def test_catastrophic_pattern_leaves_the_server_answering(self, serve: str, committed_engine: Engine) -> None:
        """(a+)+b against 'a'*40+'!': /healthz answers while the silence is created and while evaluation passes
        match it, the '!' alert stays active and the 'b' alert is suppressed by the evaluator."""
        tenant = make_tenant(committed_engine)
        with httpx.Client(base_url=serve, headers=auth(tenant.read_key), timeout=60) as api:
            rule_ids = {}
            for name in (NOT_MATCHED, MATCHED):
                created = api.post("/api/v1/alert-rules", json={"name": name, "condition_config": CONDITION, "enabled": False})
                assert created.status_code == 201, created.text
                rule_ids[name] = created.json()["rule_id"]
            victim = _open_alert(committed_engine, rule_ids[NOT_MATCHED])

            answer: dict[str, Any] = {}

            def create_silence() -> None:
                body = {"matchers": [{"name": "alertname", "op": "=~", "value": EVIL}], "duration_minutes": 60}
                try:
                    answer["response"] = api.post("/api/v1/silences", json=body)
                except httpx.HTTPError as exc:  # a server stuck matching never answers
                    answer["error"] = exc

            attack = threading.Thread(target=create_silence, daemon=True)
            attack.start()
            probes = [_probe(serve)]
            while attack.is_alive():
                probes.append(_probe(serve))
            attack.join()
            assert "error" not in answer, answer
            response = answer["response"]
            assert response.status_code == 201, response.text
            assert response.json()["alerts_changed"] == 0  # (a+)+b does not match the whole of aaa…a!

            # the scheduler's passes match every open alert against the silence: a new 'b' alert gets suppressed
            matched = _open_alert(committed_engine, rule_ids[MATCHED])
            deadline = time.monotonic() + 60
            while _status(committed_engine, matched) != "suppressed" and time.monotonic() < deadline:
                probes.append(_probe(serve))
                time.sleep(0.2)
            probes.append(_probe(serve))
        print(f"/healthz answered {len(probes)} probes during the attack, slowest {max(probes):.3f} s")
        assert _status(committed_engine, matched) == "suppressed"
        assert _status(committed_engine, victim) == "active"

    def test_unclosed_sql_comments_leave_the_server_answering(self, serve: str, committed_engine: Engine) -> None:
        """100 KB of unclosed ``/*`` sent to POST /api/v1/query (a backtracking comment scan is quadratic in it):
        /healthz answers meanwhile and the statement is refused with a 400 on sql."""
        tenant = make_tenant(committed_engine)
        answer: dict[str, Any] = {}

        def send() -> None:
            try:
                answer["response"] = httpx.post(
                    f"{serve}/api/v1/query", json={"sql": "/* " * 33_000 + "select 1"}, headers=auth(tenant.read_key), timeout=60
                )
            except httpx.HTTPError as exc:
                answer["error"] = exc

        attack = threading.Thread(target=send, daemon=True)
        attack.start()
        probes = [_probe(serve)]
        while attack.is_alive():
            probes.append(_probe(serve))
        attack.join()
        print(f"/healthz answered {len(probes)} probes during the attack, slowest {max(probes):.3f} s")
        assert "error" not in answer, answer
        response = answer["response"]
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"][0]["field"] == "sql"

    def test_long_pattern_is_refused(self, client: TestClient, tenant: Tenant) -> None:
        """A pattern longer than the limit is a 400 naming matchers[0].value; one at the limit is accepted."""

        def post(value: str) -> Any:
            body = {"matchers": [{"name": "alertname", "op": "=~", "value": value}], "duration_minutes": 5}
            return client.post("/api/v1/silences", json=body, headers=auth(tenant.read_key))

        refused = post("a" * (MAX_PATTERN_CHARS + 1))
        assert refused.status_code == 400, refused.text
        detail = refused.json()["error"]["details"][0]
        assert detail["field"] == "matchers[0].value" and str(MAX_PATTERN_CHARS) in detail["reason"]
        assert post("a" * MAX_PATTERN_CHARS).status_code == 201

    @pytest.mark.parametrize(
        ("pattern", "words"),
        [
            (r"(a)\1", "backreference"),
            ("(?=a)a", "lookahead"),
            ("(?!b)a", "lookahead"),
            ("(?<=x)a", "lookbehind"),
            ("a{2000}", "repetition"),
            ("(", "not a regular expression"),
        ],
    )
    def test_unsupported_pattern_is_refused(self, client: TestClient, tenant: Tenant, pattern: str, words: str) -> None:
        """Backreferences, lookaround and over-sized repetitions (which RE2 cannot run in linear time) are 400s
        naming the field and the construct."""
        body = {"matchers": [{"name": "alertname", "op": "!~", "value": pattern}, {"name": "team", "value": "x"}]}
        response = client.post("/api/v1/silences", json={**body, "duration_minutes": 5}, headers=auth(tenant.read_key))
        assert response.status_code == 400, response.text
        detail = response.json()["error"]["details"][0]
        assert detail["field"] == "matchers[0].value" and words in detail["reason"]


@pytest.fixture()
def tenant(committed_engine: Engine) -> Tenant:
    return make_tenant(committed_engine)


class TestRuleNames:
    def test_nfc_and_nfd_spellings_are_one_name(self, client: TestClient, tenant: Tenant) -> None:
        """A rule named in NFD after one named in NFC (same look) is 409; the name is stored NFC, and a
        silence typed in either form matches it."""
        suffix = uuid.uuid4().hex[:6]
        composed = unicodedata.normalize("NFC", f"Caf\u00e9 latency {suffix}")
        decomposed = unicodedata.normalize("NFD", composed)
        assert composed != decomposed
        first = client.post(
            "/api/v1/alert-rules", json={"name": decomposed, "condition_config": CONDITION}, headers=auth(tenant.read_key)
        )
        assert first.status_code == 201, first.text
        assert first.json()["name"] == composed
        again = client.post(
            "/api/v1/alert-rules", json={"name": composed, "condition_config": CONDITION}, headers=auth(tenant.read_key)
        )
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        other = client.post(
            "/api/v1/alert-rules", json={"name": f"other {suffix}", "condition_config": CONDITION}, headers=auth(tenant.read_key)
        )
        renamed = client.patch(
            f"/api/v1/alert-rules/{other.json()['rule_id']}", json={"name": decomposed}, headers=auth(tenant.read_key)
        )
        assert renamed.status_code == 409, renamed.text
        for typed in (composed, decomposed):
            silence = parse_matchers([{"name": "alertname", "value": typed}])
            assert matches_all(silence, {"alertname": first.json()["name"]})

    @pytest.mark.parametrize(
        "name",
        [
            "\u200b\u200b",  # zero-width spaces
            "\u202e\u202d",  # right-to-left and left-to-right overrides
            "\u2066\u2069",  # isolates
            "\u00a0\u3000",  # no-break and ideographic spaces
            "\u3164",  # Hangul filler
            "\ufeff\u2060",  # BOM and word joiner
            "\x07bell",  # a control character
        ],
    )
    def test_invisible_name_is_refused(self, client: TestClient, tenant: Tenant, name: str) -> None:
        """Names made only of invisible or direction-override characters (or holding controls) are 400s on name."""
        response = client.post(
            "/api/v1/alert-rules", json={"name": name, "condition_config": CONDITION}, headers=auth(tenant.read_key)
        )
        assert response.status_code == 400, response.text
        assert [detail["field"] for detail in response.json()["error"]["details"]] == ["name"]

    def test_visible_names_with_marks_are_kept(self, client: TestClient, tenant: Tenant) -> None:
        """Non-Latin names and names with a direction mark beside letters are ordinary names."""
        for name in (f"\u05e9\u05dc\u05d5\u05dd {uuid.uuid4().hex[:4]}", f"\u200fcpu {uuid.uuid4().hex[:4]}"):
            response = client.post(
                "/api/v1/alert-rules", json={"name": name, "condition_config": CONDITION}, headers=auth(tenant.read_key)
            )
            assert response.status_code == 201, response.text
