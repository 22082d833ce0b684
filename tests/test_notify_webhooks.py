"""Slack and generic webhooks: the pure formats (native, Alertmanager v4, Slack, the signature), and the
outbox dispatched to a real HTTP receiver on a local port, every attempt read back from ``alert_deliveries``."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from sqlalchemy import Engine

from fernando_telemetry.composition import jobs
from fernando_telemetry.notify.message import AlertMessage, Links, condition_text, format_value, links_for
from fernando_telemetry.notify.notifier import ChannelNotifier, RecordingNotifier, WebhookChannel
from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.notify.signature import SIGNATURE_HEADER, sign, signature_header, verify
from fernando_telemetry.notify.slack_format import slack_payload
from fernando_telemetry.notify.targets import TargetPolicy, mask_url, parse_networks, target_problem
from fernando_telemetry.notify.webhook_format import ZERO_TIME, alertmanager_payload, native_payload
from fernando_telemetry.services import alert_notifications
from fernando_telemetry.services.alert_notifications import RetryPolicy
from fernando_telemetry.settings import Settings
from fernando_telemetry.storage.database import session_factory
from fernando_telemetry.storage.models import NotificationChannel
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
    load_alert,
    outbox,
    tenant_seed,
)

SIGNING_SECRET = "whsec-0123456789abcdef0123456789abcdef"
EXTERNAL_URL = "https://telemetry.example.com"

LOOPBACK_ALLOWED = TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"))  # the receivers listen on loopback


def _message(kind: str = "firing", **changes: object) -> AlertMessage:
    message = AlertMessage(
        kind=kind,
        alert_id=42,
        rule_id=7,
        rule_name="High CPU Usage",
        title="High CPU Usage",
        severity="critical",
        alert_status="resolved" if kind == "resolved" else "active",
        fingerprint="ab" * 32,
        starts_at=datetime(2026, 11, 28, 4, 0, tzinfo=UTC),
        ends_at=datetime(2026, 11, 28, 4, 30, tzinfo=UTC) if kind == "resolved" else None,
        message="avg(cpu_usage) is 93.2 on web-1",
        group_key={"host": "web-1"},
        labels={"team": "platform"},
        annotations={"summary": "CPU above 80%", "runbook_url": "https://runbooks.example.com/cpu"},
        observed_value=93.2,
        threshold_value=80.0,
        condition={
            "source": "system_metrics",
            "metric": "cpu_usage",
            "aggregation": "avg",
            "operator": ">",
            "threshold": 80,
            "window_minutes": 5,
        },
        affected_service="api",
        license_id=3,
        notification_id=17,
    )
    message = replace(message, **changes)  # type: ignore[arg-type]
    return message.with_delivery(notification_id=message.notification_id, links=links_for(message, EXTERNAL_URL))


@pytest.fixture()
def seed(committed_engine: Engine) -> Iterator[TenantSeed]:
    yield from tenant_seed(committed_engine)


def _dispatch(engine: Engine, *, now: datetime = FIXED_NOW, notifier: object | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    return alert_notifications.dispatch_due(
        session_factory(engine),
        now=now,
        notifier=notifier or ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED),
        box=BOX,
        external_url=EXTERNAL_URL,
        **kwargs,  # type: ignore[arg-type]
    )


class TestFormats:
    def test_alertmanager_v4_firing_has_every_field_of_the_format(self) -> None:
        """The firing body has Alertmanager's v4 keys, one alert with alertname and severity labels, endsAt zero."""
        payload = alertmanager_payload(_message(), receiver="pager")
        assert set(payload) == {
            "version",
            "groupKey",
            "truncatedAlerts",
            "status",
            "receiver",
            "groupLabels",
            "commonLabels",
            "commonAnnotations",
            "externalURL",
            "alerts",
        }
        assert payload["version"] == "4"
        assert payload["status"] == "firing"
        assert payload["receiver"] == "pager"
        assert payload["externalURL"] == EXTERNAL_URL
        assert payload["groupLabels"] == {"alertname": "High CPU Usage", "host": "web-1"}
        assert payload["groupKey"] == '{}:{alertname="High CPU Usage", host="web-1"}'
        (alert,) = payload["alerts"]
        assert set(alert) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
        assert alert["labels"]["alertname"] == "High CPU Usage"
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["host"] == "web-1" and alert["labels"]["team"] == "platform"
        assert alert["annotations"]["summary"] == "CPU above 80%"
        assert alert["startsAt"] == "2026-11-28T04:00:00Z"
        assert alert["endsAt"] == ZERO_TIME
        assert alert["generatorURL"] == f"{EXTERNAL_URL}/ui/alerts/42"
        assert alert["fingerprint"] == "ab" * 32
        assert payload["commonLabels"] == alert["labels"]

    def test_alertmanager_resolved_carries_ends_at_and_the_same_group_key(self) -> None:
        """A resolved body says resolved with the end time, under the group key of the firing one."""
        firing = alertmanager_payload(_message(), receiver="pager")
        resolved = alertmanager_payload(_message("resolved"), receiver="pager")
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] == "2026-11-28T04:30:00Z"
        assert resolved["groupKey"] == firing["groupKey"]

    def test_native_body(self) -> None:
        """The native body names the event, the receiver, the alert's figures and its links."""
        payload = native_payload(_message("repeat"), receiver="hook", sent_at=datetime(2026, 11, 28, 5, tzinfo=UTC))
        assert payload["version"] == "1" and payload["event"] == "repeat" and payload["status"] == "firing"
        assert payload["notification_id"] == 17 and payload["receiver"] == "hook"
        alert = payload["alert"]
        assert (alert["value"], alert["threshold"], alert["operator"], alert["metric"]) == (93.2, 80.0, ">", "cpu_usage")
        assert alert["group_key"] == {"host": "web-1"} and alert["ends_at"] is None
        assert payload["links"] == {
            "alert": f"{EXTERNAL_URL}/ui/alerts/42",
            "api": f"{EXTERNAL_URL}/api/v1/alerts/42",
            "history": f"{EXTERNAL_URL}/api/v1/alerts/42/history",
            "runbook": "https://runbooks.example.com/cpu",
        }

    def test_slack_message_is_readable(self) -> None:
        """The Slack message shows severity, value, threshold and group, coloured by severity, with links."""
        payload = slack_payload(_message())
        assert payload["text"].startswith("[FIRING] High CPU Usage (host=web-1): critical")
        assert "93.2" in payload["text"] and "> 80" in payload["text"]
        (attachment,) = payload["attachments"]
        assert attachment["color"] == "#b00020"
        kinds = [block["type"] for block in attachment["blocks"]]
        assert kinds == ["header", "section", "section", "context"]
        fields = {field["text"].split("\n")[0]: field["text"].split("\n")[1] for field in attachment["blocks"][2]["fields"]}
        assert fields["*Severity*"] == "critical"
        assert fields["*Value*"] == "93.2"
        assert fields["*Threshold*"] == "avg(cpu_usage) over 5 min &gt; 80"
        assert fields["*Group*"] == "host=web-1"
        context = attachment["blocks"][3]["elements"][0]["text"]
        assert f"<{EXTERNAL_URL}/ui/alerts/42|Open alert>" in context
        assert "<https://runbooks.example.com/cpu|Runbook>" in context

    def test_slack_resolved_is_green_and_escapes_markup(self) -> None:
        """Resolved is green; a title with < > & cannot inject Slack link markup."""
        payload = slack_payload(_message("resolved", annotations={"summary": "<!channel> & <http://evil|x>"}))
        attachment = payload["attachments"][0]
        assert attachment["color"] == "#2f9e44"
        assert attachment["blocks"][1]["text"]["text"] == "&lt;!channel&gt; &amp; &lt;http://evil|x&gt;"

    @pytest.mark.parametrize(
        ("value", "shown"),
        [(93.2, "93.2"), (80.0, "80"), (1234567.0, "1,234,567"), (0.001234, "0.001234"), (1234.5678, "1,234.57"), (None, "n/a")],
    )
    def test_values_read_like_numbers(self, value: float | None, shown: str) -> None:
        """Values are shown short and exact enough for a person."""
        assert format_value(value) == shown

    def test_condition_text_without_a_condition(self) -> None:
        """A message without the rule's condition still shows the threshold."""
        assert condition_text(_message(condition={})) == "80"


class TestSignature:
    def test_a_receiver_verifies_with_the_documented_recipe(self) -> None:
        """HMAC-SHA256 over "<t>." + body with the secret equals v1; verify() accepts it."""
        body = b'{"hello": "world"}'
        now = datetime(2026, 11, 28, 5, tzinfo=UTC)
        header = signature_header(SIGNING_SECRET, body, now=now)
        parts = dict(part.split("=", 1) for part in header.split(","))
        expected = hmac.new(SIGNING_SECRET.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        assert parts["t"] == str(int(now.timestamp())) and parts["v1"] == expected
        assert verify(SIGNING_SECRET, header, body, now=now)

    @pytest.mark.parametrize(
        ("secret", "body", "skew_s", "header_override"),
        [
            ("another-secret-0123456789", b"{}", 0, None),
            (SIGNING_SECRET, b"{} ", 0, None),
            (SIGNING_SECRET, b"{}", 301, None),
            (SIGNING_SECRET, b"{}", 0, ""),
            (SIGNING_SECRET, b"{}", 0, "t=abc,v1=00"),
            (SIGNING_SECRET, b"{}", 0, "v1=00"),
        ],
    )
    def test_verify_refuses(self, secret: str, body: bytes, skew_s: int, header_override: str | None) -> None:
        """A wrong secret, a changed body, an old timestamp or a malformed header fail the check."""
        now = datetime(2026, 11, 28, 5, tzinfo=UTC)
        header = signature_header(SIGNING_SECRET, b"{}", now=now) if header_override is None else header_override
        assert not verify(secret, header, body, now=now + timedelta(seconds=skew_s))

    def test_sign_is_hex_sha256(self) -> None:
        """The v1 value is 64 hex digits."""
        assert len(sign("k" * 16, b"x", 1)) == 64


class TestTargets:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("https://example.com/hook", None),
            ("http://127.0.0.1:9/x", None),
            ("ftp://example.com/x", "must be an http:// or https:// URL"),
            ("https:///nohost", "has no host"),
            ("http://example.com:99999/", "is not a valid URL (check the port)"),
            ("http://exa mple.com/", "must not contain spaces or control characters"),
            (42, "must be an http:// or https:// URL"),
        ],
    )
    def test_target_problem(self, url: object, problem: str | None) -> None:
        """Only absolute http(s) URLs with a host pass."""
        assert target_problem(url) == problem

    @pytest.mark.parametrize(
        ("url", "keep_path", "masked"),
        [
            ("https://hooks.slack.com/services/T0/B0/SECRET", False, "https://hooks.slack.com/…****"),
            ("https://example.com/hook?token=abc&x=1", True, "https://example.com/hook?token=****&x=****"),
            ("https://user:pw@example.com:8443/a", True, "https://****@example.com:8443/a"),
            ("https://example.com/a?baretoken", True, "https://example.com/a?****"),
            ("not a url", True, "****"),
        ],
    )
    def test_mask_url(self, url: str, keep_path: bool, masked: str) -> None:
        """Tokens in the query, the user part or (Slack) the path never show."""
        assert mask_url(url, keep_path=keep_path) == masked


class TestWebhookDelivery:
    def test_500_then_200_is_retried_with_backoff_and_every_attempt_logged(self, seed: TenantSeed) -> None:
        """A 500 is recorded and retried after the backoff, not before; the 200 that follows marks it sent."""
        with Receiver([500, 200]) as receiver:
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url + "/alerts?token=t0k3n"})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
            assert enqueue(seed, alert_id, "firing") == 1
            policy = RetryPolicy(max_attempts=3, backoff_s=30, backoff_max_s=600)

            first = _dispatch(seed.engine, policy=policy)
            assert (first.claimed, first.sent, first.retrying) == (1, 0, 1)
            status = load_alert(seed.engine, alert_id).notification_status["hook"]
            assert status["status"] == "retrying" and status["http_status"] == 500 and status["attempts"] == 1
            assert load_alert(seed.engine, alert_id).last_notified_at is None
            assert load_alert(seed.engine, alert_id).error_count == 1

            early = _dispatch(seed.engine, now=FIXED_NOW + timedelta(seconds=29), policy=policy)
            assert early.claimed == 0 and len(receiver.requests) == 1

            second = _dispatch(seed.engine, now=FIXED_NOW + timedelta(seconds=30), policy=policy)
            assert (second.claimed, second.sent) == (1, 1)
            assert len(receiver.requests) == 2
            assert receiver.requests[0].path == "/alerts?token=t0k3n"
        log = deliveries(seed.engine, alert_id)
        assert [(d.attempt, d.outcome, d.http_status, d.channel_name, d.channel_type, d.kind) for d in log] == [
            (1, "failed", 500, "hook", "webhook", "firing"),
            (2, "sent", 200, "hook", "webhook", "firing"),
        ]
        assert log[0].error.startswith("HTTP 500") and log[1].error is None
        assert all(d.latency_ms is not None and d.latency_ms >= 0 for d in log)
        assert log[1].attempted_at == FIXED_NOW + timedelta(seconds=30)
        (row,) = outbox(seed.engine, alert_id)
        assert (row.status, row.attempts) == ("sent", 2)
        alert = load_alert(seed.engine, alert_id)
        assert alert.notification_status["hook"]["status"] == "sent"
        assert alert.last_notified_at == FIXED_NOW + timedelta(seconds=30)
        assert alert.error_count == 1, "the sent attempt adds no error"

    def test_failures_past_max_attempts_are_abandoned(self, seed: TenantSeed) -> None:
        """A receiver that keeps answering 503 gets max_attempts tries with doubling waits, then none."""
        with Receiver([503]) as receiver:
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
            enqueue(seed, alert_id, "firing")
            policy = RetryPolicy(max_attempts=3, backoff_s=10, backoff_max_s=15)
            moments = [
                FIXED_NOW,
                FIXED_NOW + timedelta(seconds=10),
                FIXED_NOW + timedelta(seconds=25),
                FIXED_NOW + timedelta(hours=1),
            ]
            summaries = [_dispatch(seed.engine, now=moment, policy=policy) for moment in moments]
            assert len(receiver.requests) == 3
        assert [s.claimed for s in summaries] == [1, 1, 1, 0]
        assert [d.outcome for d in deliveries(seed.engine, alert_id)] == ["failed", "failed", "abandoned"]
        (row,) = outbox(seed.engine, alert_id)
        assert (row.status, row.attempts) == ("failed", 3)
        assert load_alert(seed.engine, alert_id).notification_status["hook"]["status"] == "abandoned"
        assert load_alert(seed.engine, alert_id).error_count == 3, "alerts.error_count: every failed attempt"

    def test_a_4xx_is_abandoned_at_once(self, seed: TenantSeed) -> None:
        """404 from the receiver cannot pass on a retry: one attempt, abandoned, no retry later."""
        with Receiver([404]) as receiver:
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
            enqueue(seed, alert_id, "firing")
            assert _dispatch(seed.engine).abandoned == 1
            assert _dispatch(seed.engine, now=FIXED_NOW + timedelta(days=1)).claimed == 0
            assert len(receiver.requests) == 1
        ((attempt, outcome, status),) = [(d.attempt, d.outcome, d.http_status) for d in deliveries(seed.engine, alert_id)]
        assert (attempt, outcome, status) == (1, "abandoned", 404)

    def test_the_receiver_verifies_the_signature_with_the_secret(self, seed: TenantSeed) -> None:
        """With a secret, each body arrives with X-Fernando-Signature that the receiver recomputes from the raw body."""
        with Receiver() as receiver:
            add_channel(seed, {"name": "signed", "type": "webhook", "url": receiver.url, "secret": SIGNING_SECRET})
            add_channel(seed, {"name": "unsigned", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["signed", "unsigned"]))
            enqueue(seed, alert_id, "firing")
            assert _dispatch(seed.engine).sent == 2
        by_receiver = {orjson.loads(r.body)["receiver"]: r for r in receiver.requests}
        signed, unsigned = by_receiver["signed"], by_receiver["unsigned"]
        header = signed.headers[SIGNATURE_HEADER.lower()]
        timestamp, v1 = (part.split("=", 1)[1] for part in header.split(","))
        assert timestamp == str(int(FIXED_NOW.timestamp()))
        assert hmac.compare_digest(
            v1, hmac.new(SIGNING_SECRET.encode(), timestamp.encode() + b"." + signed.body, hashlib.sha256).hexdigest()
        )
        assert verify(SIGNING_SECRET, header, signed.body, now=FIXED_NOW)
        assert not verify(SIGNING_SECRET, header, signed.body.replace(b"93.2", b"13.2"), now=FIXED_NOW)
        assert SIGNATURE_HEADER.lower() not in unsigned.headers
        assert signed.headers["x-fernando-event"] == "firing"
        assert signed.headers["content-type"] == "application/json"

    def test_alertmanager_receiver_gets_v4_bodies_for_firing_and_resolved(self, seed: TenantSeed) -> None:
        """An Alertmanager-format channel receives v4 JSON: firing, then resolved with endsAt, one group key."""
        with Receiver() as receiver:
            add_channel(seed, {"name": "am", "type": "webhook", "url": receiver.url, "format": "alertmanager"})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["am"]))
            enqueue(seed, alert_id, "firing")
            _dispatch(seed.engine)
            resolved_at = FIXED_NOW + timedelta(minutes=3)
            enqueue(seed, alert_id, "resolved", now=resolved_at, status="resolved", resolved_at=resolved_at)
            _dispatch(seed.engine, now=resolved_at)
        firing, resolved = (orjson.loads(r.body) for r in receiver.requests)
        for body in (firing, resolved):
            assert body["version"] == "4" and body["receiver"] == "am" and body["externalURL"] == EXTERNAL_URL
            assert isinstance(body["alerts"], list) and len(body["alerts"]) == 1
            labels = body["alerts"][0]["labels"]
            assert labels["alertname"] == "High CPU Usage" and labels["severity"] == "critical"
        assert firing["status"] == "firing" and firing["alerts"][0]["endsAt"] == ZERO_TIME
        assert resolved["status"] == "resolved"
        assert resolved["alerts"][0]["endsAt"] == resolved_at.isoformat().replace("+00:00", "Z")
        assert firing["groupKey"] == resolved["groupKey"]
        assert firing["alerts"][0]["fingerprint"] == load_alert(seed.engine, alert_id).fingerprint
        assert firing["alerts"][0]["generatorURL"] == f"{EXTERNAL_URL}/ui/alerts/{alert_id}"
        assert firing["alerts"][0]["annotations"]["runbook_url"] == "https://runbooks.example.com/cpu"

    def test_slack_webhook_receives_the_readable_message(self, seed: TenantSeed) -> None:
        """A Slack channel posts the Slack message (text + coloured attachment) to its webhook URL."""
        with Receiver() as receiver:
            add_channel(seed, {"name": "slack", "type": "slack", "webhook_url": receiver.url + "/services/T0/B0/XYZ"})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["slack"]))
            enqueue(seed, alert_id, "firing")
            assert _dispatch(seed.engine).sent == 1
        (request,) = receiver.requests
        assert request.path == "/services/T0/B0/XYZ"
        body = orjson.loads(request.body)
        assert set(body) == {"text", "attachments"}
        assert "critical" in body["text"] and "93.2" in body["text"] and "> 80" in body["text"]
        assert f"{EXTERNAL_URL}/ui/alerts/{alert_id}" in orjson.dumps(body).decode()

    def test_two_dispatchers_at_once_send_each_notification_once(self, seed: TenantSeed) -> None:
        """Dispatchers racing on the same due rows (SKIP LOCKED + lease) never send one notification twice."""
        with Receiver() as receiver:
            for index in range(3):
                add_channel(seed, {"name": f"hook{index}", "type": "webhook", "url": f"{receiver.url}/{index}"})
            rule_id = add_rule(seed, channels=["hook0", "hook1", "hook2"])
            alert_ids = [add_alert(seed, rule_id=rule_id) for _ in range(4)]
            for alert_id in alert_ids:
                enqueue(seed, alert_id, "firing")
            barrier = threading.Barrier(3)
            totals: list[int] = []

            def run() -> None:
                barrier.wait()
                totals.append(_dispatch(seed.engine, batch_size=5).sent)

            threads = [threading.Thread(target=run) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            while (summary := _dispatch(seed.engine)).claimed:
                totals.append(summary.sent)
        assert sum(totals) == 12
        assert len(receiver.requests) == 12
        ids = [r.headers["x-fernando-notification-id"] for r in receiver.requests]
        assert len(set(ids)) == 12

    def test_nothing_is_sent_while_the_evaluation_transaction_is_open(self, seed: TenantSeed) -> None:
        """enqueue only writes the outbox: until its transaction commits, a dispatcher finds nothing."""
        with Receiver() as receiver:
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
            with session_factory(seed.engine).begin() as session:
                from fernando_telemetry.storage.models import Alert, AlertRule

                alert = session.get(Alert, alert_id)
                assert alert is not None
                rule = session.get(AlertRule, alert.rule_id)
                assert alert_notifications.enqueue(session, alert=alert, rule=rule, kind="firing", now=FIXED_NOW) == 1
                assert _dispatch(seed.engine).claimed == 0
                assert receiver.requests == []
            assert _dispatch(seed.engine).sent == 1


class TestEnqueue:
    def test_the_seed_rule_notifies_its_email_and_slack_channels(self, seed: TenantSeed) -> None:
        """A rule naming ["email", "slack"] queues one notification per channel once both exist."""
        add_channel(seed, {"name": "email", "type": "email", "to": ["ops@example.com"]})
        add_channel(seed, {"name": "slack", "type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["email", "slack"]))
        assert enqueue(seed, alert_id, "firing") == 2
        assert sorted(row.channel_name for row in outbox(seed.engine, alert_id)) == ["email", "slack"]
        status = load_alert(seed.engine, alert_id).notification_status
        assert {name: entry["status"] for name, entry in status.items()} == {"email": "pending", "slack": "pending"}

    def test_only_existing_enabled_channels_of_the_rules_license(self, seed: TenantSeed, committed_engine: Engine) -> None:
        """Unknown names, disabled channels and another license's channel of the same name are skipped."""
        other = next(tenant_seed_iter := tenant_seed(committed_engine))
        try:
            add_channel(other, {"name": "hook-b", "type": "webhook", "url": "http://127.0.0.1:9/b"})
            add_channel(seed, {"name": "hook-a", "type": "webhook", "url": "http://127.0.0.1:9/a"})
            add_channel(seed, {"name": "off", "type": "webhook", "url": "http://127.0.0.1:9/off", "enabled": False})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook-a", "hook-b", "off", "missing"]))
            assert enqueue(seed, alert_id, "firing") == 1
            assert [row.channel_name for row in outbox(seed.engine, alert_id)] == ["hook-a"]
        finally:
            next(tenant_seed_iter, None)

    def test_resolved_only_where_send_resolved_and_it_supersedes_waiting_firing(self, seed: TenantSeed) -> None:
        """resolved skips channels without send_resolved and cancels a firing notification still waiting."""
        add_channel(seed, {"name": "all", "type": "webhook", "url": "http://127.0.0.1:9/all"})
        add_channel(seed, {"name": "quiet", "type": "webhook", "url": "http://127.0.0.1:9/q", "send_resolved": False})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["all", "quiet"]))
        assert enqueue(seed, alert_id, "firing") == 2
        assert enqueue(seed, alert_id, "resolved", now=FIXED_NOW + timedelta(minutes=1)) == 1
        rows = {(row.channel_name, row.kind): (row.status, row.last_error) for row in outbox(seed.engine, alert_id)}
        assert rows == {
            ("all", "firing"): ("failed", alert_notifications.SUPERSEDED),
            ("quiet", "firing"): ("pending", None),
            ("all", "resolved"): ("pending", None),
        }

    def test_repeat_waits_for_the_previous_notification_of_the_channel(self, seed: TenantSeed) -> None:
        """No repeat is queued for a channel that still has one of the alert's notifications waiting."""
        add_channel(seed, {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
        assert enqueue(seed, alert_id, "firing") == 1
        assert enqueue(seed, alert_id, "repeat", now=FIXED_NOW + timedelta(hours=4)) == 0
        _dispatch(seed.engine, notifier=RecordingNotifier())
        assert enqueue(seed, alert_id, "repeat", now=FIXED_NOW + timedelta(hours=4)) == 1

    def test_a_rule_without_channels_or_no_rule_queues_nothing(self, seed: TenantSeed) -> None:
        """No channels named, or the rule deleted: nothing queued, nothing changed."""
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=[]))
        assert enqueue(seed, alert_id, "firing") == 0
        with session_factory(seed.engine).begin() as session:
            from fernando_telemetry.storage.models import Alert

            alert = session.get(Alert, alert_id)
            assert alert_notifications.enqueue(session, alert=alert, rule=None, kind="firing", now=FIXED_NOW) == 0  # type: ignore[arg-type]

    def test_an_unknown_kind_is_refused(self, seed: TenantSeed) -> None:
        """Only firing, resolved and repeat can be queued."""
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=[]))
        with pytest.raises(Exception, match="not one of"):
            enqueue(seed, alert_id, "exploded")

    def test_a_channel_disabled_or_deleted_after_queueing_is_abandoned(self, seed: TenantSeed) -> None:
        """The dispatcher abandons (and logs) notifications whose channel was disabled or removed meanwhile."""
        add_channel(seed, {"name": "soon-off", "type": "webhook", "url": "http://127.0.0.1:9/"})
        add_channel(seed, {"name": "soon-gone", "type": "webhook", "url": "http://127.0.0.1:9/"})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["soon-off", "soon-gone"]))
        enqueue(seed, alert_id, "firing")
        with session_factory(seed.engine).begin() as session:
            session.query(NotificationChannel).filter_by(license_id=seed.license_id, name="soon-off").update({"enabled": False})
            session.query(NotificationChannel).filter_by(license_id=seed.license_id, name="soon-gone").delete()
        notifier = RecordingNotifier()
        assert _dispatch(seed.engine, notifier=notifier).abandoned == 2
        assert notifier.sent == []
        errors = sorted(d.error for d in deliveries(seed.engine, alert_id))
        assert errors == ["the channel is disabled", "the channel was deleted"]

    def test_secrets_of_another_key_are_abandoned_with_a_clear_error(self, seed: TenantSeed) -> None:
        """Secrets sealed under another secret key cannot be opened: the attempt says so, nothing is sent."""
        from fernando_telemetry.services.secret_box import SecretBox

        add_channel(seed, {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/"}, box=SecretBox("some-other-key"))
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
        enqueue(seed, alert_id, "firing")
        assert _dispatch(seed.engine, notifier=RecordingNotifier()).abandoned == 1
        (delivery,) = deliveries(seed.engine, alert_id)
        assert "cannot be decrypted" in (delivery.error or "")

    def test_a_raising_notifier_costs_one_retry_not_the_dispatch(self, seed: TenantSeed) -> None:
        """A notifier that raises is recorded as a failed attempt; the other channel is still sent."""
        add_channel(seed, {"name": "bad", "type": "webhook", "url": "http://127.0.0.1:9/bad"})
        add_channel(seed, {"name": "good", "type": "webhook", "url": "http://127.0.0.1:9/good"})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["bad", "good"]))
        enqueue(seed, alert_id, "firing")

        def answer(channel: object, message: AlertMessage) -> SendResult:
            if isinstance(channel, WebhookChannel) and channel.name == "bad":
                raise RuntimeError("boom")
            return SendResult(ok=True, http_status=200, latency_ms=1.0)

        summary = _dispatch(seed.engine, notifier=RecordingNotifier(answer))
        assert (summary.sent, summary.retrying) == (1, 1)
        outcomes = {d.channel_name: (d.outcome, d.error) for d in deliveries(seed.engine, alert_id)}
        assert outcomes == {"bad": ("failed", "RuntimeError: boom"), "good": ("sent", None)}


class TestDispatchJob:
    def test_the_job_sends_with_the_settings(self, seed: TenantSeed) -> None:
        """jobs.notification_dispatch sends due notifications using the secret key and external URL of the settings."""
        settings = Settings(
            secret_key="test-secret-key-for-notification-channels",
            external_url="https://t.example.com/",
            notification_timeout_s=5,
            webhook_allowed_networks="127.0.0.0/8",
        )
        with Receiver() as receiver:
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["hook"]))
            enqueue(seed, alert_id, "firing")
            outcome = jobs.notification_dispatch(settings)(session_factory(seed.engine), FIXED_NOW)
        assert outcome.ran and "1 sent" in outcome.summary
        body = orjson.loads(receiver.requests[0].body)
        assert body["links"]["alert"] == f"https://t.example.com/ui/alerts/{alert_id}"

    def test_the_job_is_scheduled_unless_turned_off(self) -> None:
        """default_jobs has notification_dispatch at its interval; interval 0 leaves it out."""
        on = {job.name: job.interval_s for job in jobs.default_jobs(Settings(notification_dispatch_interval_s=7))}
        off = {job.name for job in jobs.default_jobs(Settings(notification_dispatch_interval_s=0))}
        assert on["notification_dispatch"] == 7
        assert "notification_dispatch" not in off


def test_links_are_left_out_without_an_external_url() -> None:
    """With no external URL a message still carries its runbook link, and no other."""
    links = links_for(_message(), None)
    assert links == Links(runbook_url="https://runbooks.example.com/cpu")
