"""Webhook targets: loopback, private and link-local addresses are refused unless their network is allowed,
when a channel is saved (IP literals) and before every send (every address a name resolves to)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.notify.http_post import post_json
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.settings import Settings
from tests.ingest_fixtures import make_tenant

DENY = TargetPolicy()


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://0.0.0.0/hook", "unspecified"),
    ],
)
def test_internal_literals_are_refused_and_allowed_networks_let_them_through(url: str, kind: str) -> None:
    problem = DENY.literal_problem(url)
    assert problem is not None and kind in problem and "FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS" in problem
    allowing = TargetPolicy(
        allowed_networks=parse_networks("127.0.0.0/8, 10.0.0.0/8, 192.168.0.0/16, 169.254.0.0/16, ::1/128, 0.0.0.0/32")
    )
    assert allowing.literal_problem(url) is None


def test_public_addresses_pass_and_names_are_checked_on_every_address_at_send() -> None:
    assert DENY.literal_problem("https://203.0.113.7/hook") is not None  # TEST-NET-3 is reserved documentation space
    assert DENY.literal_problem("https://8.8.8.8/hook") is None
    assert DENY.literal_problem("https://hooks.example.com/x") is None  # a name: checked when sending
    rebinding = TargetPolicy(resolve=lambda host: ["8.8.8.8", "10.0.0.5"])
    problem = rebinding.send_problem("https://hooks.example.com/x")
    assert problem is not None and "may not reach" in problem and "10.0.0.5" not in problem  # the DNS answer stays internal
    public = TargetPolicy(resolve=lambda host: ["8.8.4.4"])
    assert public.send_problem("https://hooks.example.com/x") is None
    unresolvable = TargetPolicy(resolve=lambda host: (_ for _ in ()).throw(OSError("Name or service not known")))
    assert "does not resolve" in (unresolvable.send_problem("https://nowhere.invalid/x") or "")


def test_a_refused_target_is_never_contacted() -> None:
    result = post_json("http://127.0.0.1:9/hook", b"{}", headers={}, timeout_s=1, targets=DENY)
    assert not result.ok and not result.retryable and "loopback" in (result.error or "") and result.http_status is None


def test_bad_networks_are_named() -> None:
    with pytest.raises(ValueError, match="'10.0.0/33' is not a network"):
        parse_networks("127.0.0.0/8,10.0.0/33")


def test_the_api_refuses_an_internal_target_unless_the_operator_allows_it(committed_engine: Engine) -> None:
    tenant = make_tenant(committed_engine)
    headers = {"Authorization": f"Bearer {tenant.read_key}"}
    body = {"name": "internal", "type": "webhook", "url": "http://10.9.8.7/hook"}
    strict = build(Settings(), engine=committed_engine)
    with TestClient(strict.app) as client:
        refused = client.post("/api/v1/notification-channels", json=body, headers=headers)
        assert refused.status_code == 400, refused.text
        assert any(d.get("field") == "url" and "private" in d.get("reason", "") for d in refused.json()["error"]["details"])
    allowing = build(Settings(webhook_allowed_networks="10.9.0.0/16"), engine=committed_engine)
    with TestClient(allowing.app) as client:
        assert client.post("/api/v1/notification-channels", json=body, headers=headers).status_code == 201
