"""Outbound connections made on a tenant's behalf (webhooks, Slack, a channel's own SMTP server), attacked:
internal targets at create and at test-send (SMTP included), IPv6 encodings of internal IPv4 addresses, DNS
rebinding between the check and the connection, banner grabbing and DNS answers in error messages, a channel
type that is not a string, an unresolvable target during a resolver outage, and one license's notification
storm against another license's single notification."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from fernando_telemetry.composition.wiring import build
from fernando_telemetry.core.caller import Caller
from fernando_telemetry.notify.http_post import post_json
from fernando_telemetry.notify.notifier import ChannelNotifier
from fernando_telemetry.notify.smtp import SmtpServer, deliver
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.services import alert_notifications, notification_channels
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import AlertNotification
from tests.ingest_fixtures import make_tenant
from tests.notify_fixtures import (
    BOX,
    FIXED_NOW,
    Receiver,
    TenantSeed,
    add_alert,
    add_channel,
    add_rule,
    deliveries,
    enqueue,
    outbox,
    tenant_seed,
)

BANNER = b"SSH-2.0-OpenSSH_9.6 build-host-db-internal-7"
BANNER_TEXT = "build-host-db-internal-7"
LOOPBACK_ALLOWED = TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"))


class BannerService:
    """A TCP service that is not SMTP: it writes a banner to whoever connects and counts the connections."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.create_server((host, port))
        self.port = self._socket.getsockname()[1]
        self._socket.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(5)
            self.connections += 1
            with connection:
                try:
                    connection.sendall(BANNER + b"\r\n")
                    connection.recv(1024)
                except OSError:
                    pass

    def __enter__(self) -> BannerService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


@dataclass
class Mailbox:
    messages: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope.content)
        return "250 2.0.0 accepted"


@pytest.fixture()
def seed(committed_engine: Engine) -> Iterator[TenantSeed]:
    yield from tenant_seed(committed_engine)


@pytest.fixture()
def other_seed(committed_engine: Engine) -> Iterator[TenantSeed]:
    yield from tenant_seed(committed_engine)


def _details(response: Any) -> list[dict[str, Any]]:
    return response.json()["error"]["details"]


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "::1", "2002:7f00:1::", "64:ff9b::a00:1", "::ffff:127.0.0.1"],
)
def test_an_internal_smtp_host_is_refused_when_the_channel_is_created(committed_engine: Engine, host: str) -> None:
    tenant = make_tenant(committed_engine)
    strict = build(Settings(), engine=committed_engine)
    body = {"name": "mail", "type": "email", "to": ["ops@example.com"], "smtp_host": host, "smtp_port": 25}
    with TestClient(strict.app) as client:
        response = client.post("/api/v1/notification-channels", json=body, headers={"Authorization": f"Bearer {tenant.read_key}"})
    assert response.status_code == 400, response.text
    assert any(detail["field"] == "smtp_host" for detail in _details(response))


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
        "http://[2002:0a00:0001::]/hook",  # 6to4 around 10.0.0.1
        "http://[2002:0808:0808::]/hook",  # 6to4, even around a public address: relayed by a gateway
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 around 127.0.0.1
        "http://[64:ff9b:1::a9fe:a9fe]/hook",  # local-use NAT64 around 169.254.169.254
        "http://[::ffff:7f00:1]/hook",  # IPv4-mapped
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",  # Teredo
        "http://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "http://[fd00::1]/hook",  # unique local
    ],
)
def test_encodings_of_internal_addresses_are_refused(committed_engine: Engine, url: str) -> None:
    tenant = make_tenant(committed_engine)
    strict = build(Settings(), engine=committed_engine)
    with TestClient(strict.app) as client:
        response = client.post(
            "/api/v1/notification-channels",
            json={"name": "hook", "type": "webhook", "url": url},
            headers={"Authorization": f"Bearer {tenant.read_key}"},
        )
    assert response.status_code == 400, response.text
    assert any(detail["field"] == "url" for detail in _details(response))
    with Receiver() as receiver:  # and at send time, whatever was stored
        result = post_json(url.replace("/hook", f"/{receiver.url[-5:]}"), b"{}", headers={}, timeout_s=2, targets=TargetPolicy())
    assert not result.ok and not result.retryable and "refused" in (result.error or "")


def test_a_stored_loopback_smtp_channel_is_refused_at_test_send_and_never_contacted(committed_engine: Engine) -> None:
    """A channel saved before the check (or by a CLI without it): the test send refuses it and says only why."""
    tenant = make_tenant(committed_engine)
    with BannerService() as service:
        with session_factory(committed_engine).begin() as session:
            spec = {"name": "scan", "type": "email", "to": ["ops@example.com"], "smtp_host": "127.0.0.1"}
            spec |= {"smtp_port": service.port, "smtp_security": "none"}
            notification_channels.create(session, caller=Caller.for_cli(), license_id=tenant.license_id, spec=spec, box=BOX)
        strict = build(Settings(), engine=committed_engine)
        with TestClient(strict.app) as client:
            response = client.post(
                "/api/v1/notification-channels/scan/test", headers={"Authorization": f"Bearer {tenant.read_key}"}
            )
        assert service.connections == 0
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["ok"] is False and answer["smtp_reply"] is None
    assert "loopback" in answer["error"] and BANNER_TEXT not in response.text


def test_a_non_smtp_service_banner_is_never_echoed(committed_engine: Engine) -> None:
    """Allowed by the operator, the address is contacted; what a non-SMTP service says stays out of the answer."""
    tenant = make_tenant(committed_engine)
    allowing = build(Settings(webhook_allowed_networks="127.0.0.0/8"), engine=committed_engine)
    headers = {"Authorization": f"Bearer {tenant.read_key}"}
    with BannerService() as service, TestClient(allowing.app) as client:
        spec = {"name": "grab", "type": "email", "to": ["ops@example.com"], "smtp_host": "127.0.0.1"}
        spec |= {"smtp_port": service.port, "smtp_security": "none"}
        assert client.post("/api/v1/notification-channels", json=spec, headers=headers).status_code == 201
        response = client.post("/api/v1/notification-channels/grab/test", headers=headers)
        assert service.connections == 1
        closed = socket.create_server(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        hook = {"name": "closed", "type": "webhook", "url": f"http://127.0.0.1:{closed_port}/x"}
        assert client.post("/api/v1/notification-channels", json=hook, headers=headers).status_code == 201
        refused = client.post("/api/v1/notification-channels/closed/test", headers=headers).json()
    answer = response.json()
    assert answer["ok"] is False and answer["smtp_reply"] is None and BANNER_TEXT not in response.text
    assert "SMTP" in answer["error"]
    assert refused["ok"] is False and "Errno" not in refused["error"] and "could not connect" in refused["error"]


def test_a_resolved_internal_address_is_not_named_in_the_error() -> None:
    policy = TargetPolicy(resolve=lambda host: ["93.184.216.34", "10.44.0.7"])
    result = post_json("https://hooks.example.com/x", b"{}", headers={}, timeout_s=2, targets=policy)
    assert not result.ok and "10.44.0.7" not in (result.error or "") and "may not reach" in (result.error or "")
    email = deliver(
        SmtpServer("mail.example.com", 25, security="none", timeout_s=2),
        _email(),
        sender="a@example.com",
        recipients=["b@example.com"],
        targets=policy,
    )
    assert not email.ok and "10.44.0.7" not in (email.error or "") and email.smtp_reply is None


def _email() -> Any:
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = "pinned"
    message["From"] = "a@example.com"
    message["To"] = "b@example.com"
    message.set_content("pinned delivery")
    return message


class Rebinding:
    """A resolver hook that answers the checked address first and a forbidden one on every later call."""

    def __init__(self, first: str, later: str) -> None:
        self.answers = [first, later]
        self.calls = 0

    def __call__(self, host: str) -> list[str]:
        self.calls += 1
        return [self.answers[0] if self.calls == 1 else self.answers[1]]


def test_dns_rebinding_cannot_move_a_webhook_connection() -> None:
    """127.0.0.1 stands for the public address checked; 127.0.0.2 (same port, not allowed) for the internal one."""
    with Receiver() as good:
        port = int(good.url.rsplit(":", 1)[1])
        with BannerService("127.0.0.2", port) as internal:
            resolver = Rebinding("127.0.0.1", "127.0.0.2")
            policy = TargetPolicy(allowed_networks=parse_networks("127.0.0.1/32"), resolve=resolver)
            result = post_json(f"http://hooks.rebind.test:{port}/x", b"{}", headers={}, timeout_s=5, targets=policy)
            assert result.ok, result
            assert resolver.calls == 1 and internal.connections == 0
            assert [request.headers["host"] for request in good.requests] == [f"hooks.rebind.test:{port}"]
            # the next send resolves again: the forbidden answer is refused, never connected to
            again = post_json(f"http://hooks.rebind.test:{port}/x", b"{}", headers={}, timeout_s=5, targets=policy)
            assert not again.ok and internal.connections == 0 and len(good.requests) == 1


def test_dns_rebinding_cannot_move_an_smtp_connection() -> None:
    mailbox = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with BannerService("127.0.0.2", port) as internal:
            resolver = Rebinding("127.0.0.1", "127.0.0.2")
            policy = TargetPolicy(allowed_networks=parse_networks("127.0.0.1/32"), resolve=resolver)
            result = deliver(
                SmtpServer("mail.rebind.test", port, security="none", timeout_s=5),
                _email(),
                sender="a@example.com",
                recipients=["b@example.com"],
                targets=policy,
            )
            assert result.ok, result
            assert resolver.calls == 1 and internal.connections == 0 and len(mailbox.messages) == 1
    finally:
        controller.stop()


@pytest.mark.parametrize("channel_type", [["email"], {"email": True}, 3])
def test_a_channel_type_that_is_not_a_string_is_a_400(client: TestClient, committed_engine: Engine, channel_type: Any) -> None:
    tenant = make_tenant(committed_engine)
    response = client.post(
        "/api/v1/notification-channels",
        json={"name": "odd", "type": channel_type, "to": ["ops@example.com"]},
        headers={"Authorization": f"Bearer {tenant.read_key}"},
    )
    assert response.status_code == 400, response.text
    assert any(detail["field"] == "type" and "string" in detail["reason"] for detail in _details(response))


class Outage:
    """A resolver that fails until ``up`` is set, then answers 127.0.0.1."""

    def __init__(self) -> None:
        self.up = False

    def __call__(self, host: str) -> list[str]:
        if not self.up:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return ["127.0.0.1"]


def test_a_target_that_does_not_resolve_is_retried_with_backoff(seed: TenantSeed) -> None:
    resolver = Outage()
    notifier = ChannelNotifier(
        timeout_s=5, targets=TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"), resolve=resolver)
    )
    with Receiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        add_channel(seed, {"name": "hook", "type": "webhook", "url": f"http://hooks.outage.test:{port}/x"})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
        enqueue(seed, alert_id, "firing")
        sessions = session_factory(seed.engine)
        policy = alert_notifications.RetryPolicy(max_attempts=5, backoff_s=30)
        first = alert_notifications.dispatch_due(sessions, now=FIXED_NOW, notifier=notifier, box=BOX, policy=policy)
        assert (first.retrying, first.abandoned) == (1, 0)
        [row] = outbox(seed.engine, alert_id)
        assert row.status == "pending" and row.next_attempt_at == FIXED_NOW + timedelta(seconds=30)
        assert "does not resolve" in (row.last_error or "") and "Temporary failure" not in (row.last_error or "")
        resolver.up = True
        later = FIXED_NOW + timedelta(seconds=31)
        second = alert_notifications.dispatch_due(sessions, now=later, notifier=notifier, box=BOX, policy=policy)
        assert second.sent == 1 and len(receiver.requests) == 1
    assert [delivery.outcome for delivery in deliveries(seed.engine, alert_id)] == ["failed", "sent"]


def test_one_license_storm_does_not_delay_another_license_notification(seed: TenantSeed, other_seed: TenantSeed) -> None:
    """License A has 2,000 notifications due (older), license B one: B's goes out in the first run of 50."""
    with Receiver() as storm_receiver, Receiver() as calm_receiver:
        add_channel(seed, {"name": "storm", "type": "webhook", "url": f"{storm_receiver.url}/a"})
        add_channel(other_seed, {"name": "calm", "type": "webhook", "url": f"{calm_receiver.url}/b"})
        storm_alert = add_alert(seed, rule_id=add_rule(seed, channels=["storm"]))
        calm_alert = add_alert(other_seed, rule_id=add_rule(other_seed, channels=["calm"], name="Disk full"))
        enqueue(seed, storm_alert, "firing", now=FIXED_NOW - timedelta(hours=1))
        with session_factory(seed.engine).begin() as session:
            template = session.scalars(select(AlertNotification).where(AlertNotification.alert_id == storm_alert)).one()
            row = {
                column: getattr(template, column)
                for column in ("alert_id", "channel_id", "channel_name", "license_id", "kind", "payload", "status", "attempts")
            }
            session.execute(
                insert(AlertNotification),
                [{**row, "next_attempt_at": FIXED_NOW - timedelta(hours=1) + timedelta(milliseconds=i)} for i in range(1999)],
            )
        enqueue(other_seed, calm_alert, "firing", now=FIXED_NOW)
        summary = alert_notifications.dispatch_due(
            session_factory(seed.engine), now=FIXED_NOW, notifier=ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED), box=BOX
        )
        print(f"first run: {summary.describe()}")
        assert summary.claimed == 50
        assert len(calm_receiver.requests) == 1 and len(storm_receiver.requests) == 49
    assert [row.status for row in outbox(other_seed.engine, calm_alert)] == ["sent"]
    assert sum(row.status == "pending" for row in outbox(seed.engine, storm_alert)) == 1951
