"""Email notifications against a real SMTP server (aiosmtpd, in this process): plain delivery, the server's
SMTP defaults, STARTTLS and implicit TLS with a self-signed certificate made here, AUTH, refusals, and an
SMTP server that is down or hangs while another channel of the same alert is still delivered."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import Engine

from fernando_telemetry.notify.email_format import build_email, email_body, email_subject
from fernando_telemetry.notify.message import AlertMessage, Links
from fernando_telemetry.notify.notifier import ChannelNotifier, EmailChannel, SmtpDefaults
from fernando_telemetry.notify.smtp import SmtpServer, deliver
from fernando_telemetry.notify.targets import TargetPolicy, parse_networks
from fernando_telemetry.services import alert_notifications
from fernando_telemetry.storage.database import session_factory
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

USER, PASSWORD = "alerts@example.com", "s3cret-app-password"

LOOPBACK_ALLOWED = TargetPolicy(allowed_networks=parse_networks("127.0.0.0/8"))  # the receivers listen on loopback


@dataclass
class Mailbox:
    """What the SMTP server received, and how each session looked (TLS, authenticated)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "message": message_from_bytes(envelope.content, policy=policy.default),
                # STARTTLS fills session.ssl; implicit TLS shows only on the transport
                "tls": session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": bool(session.authenticated),
            }
        )
        return "250 2.0.0 Message accepted for delivery"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER and auth_data.password.decode() == PASSWORD
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Certificate:
    pem: str
    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for localhost and 127.0.0.1, made with ``cryptography``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (directory / "cert.pem").write_text(pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(pem, directory / "cert.pem", directory / "key.pem")


class SmtpFixture:
    def __init__(self, mailbox: Mailbox, controller: Controller) -> None:
        self.mailbox, self.controller = mailbox, controller

    @property
    def port(self) -> int:
        return self.controller.port


def _serve(**kwargs: Any) -> Iterator[SmtpFixture]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port(), **kwargs)
    controller.start()
    try:
        yield SmtpFixture(mailbox, controller)
    finally:
        controller.stop()


@pytest.fixture()
def plain_smtp() -> Iterator[SmtpFixture]:
    """Plain SMTP, no TLS, no AUTH."""
    yield from _serve()


@pytest.fixture()
def starttls_smtp(certificate: Certificate) -> Iterator[SmtpFixture]:
    """SMTP that requires STARTTLS and then AUTH (LOGIN/PLAIN)."""
    yield from _serve(
        tls_context=certificate.server_context(), require_starttls=True, authenticator=_authenticator, auth_required=True
    )


@pytest.fixture()
def tls_smtp(certificate: Certificate) -> Iterator[SmtpFixture]:
    """SMTP over implicit TLS (like port 465), with AUTH."""
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; this connection is TLS from its first byte
    yield from _serve(
        ssl_context=certificate.server_context(), authenticator=_authenticator, auth_required=True, auth_require_tls=False
    )


@pytest.fixture()
def seed(committed_engine: Engine) -> Iterator[TenantSeed]:
    yield from tenant_seed(committed_engine)


def _message(kind: str = "firing") -> AlertMessage:
    return AlertMessage(
        kind=kind,
        alert_id=42,
        rule_id=7,
        rule_name="High CPU Usage",
        title="High CPU Usage",
        severity="critical",
        alert_status="active",
        fingerprint="cd" * 32,
        starts_at=datetime(2026, 11, 28, 4, 0, tzinfo=UTC),
        ends_at=datetime(2026, 11, 28, 4, 30, tzinfo=UTC) if kind == "resolved" else None,
        message="avg(cpu_usage) is 93.2 on web-1",
        group_key={"host": "web-1"},
        labels={"team": "platform"},
        annotations={"summary": "CPU above 80%", "runbook_url": "https://runbooks.example.com/cpu"},
        observed_value=93.2,
        threshold_value=80.0,
        condition={"metric": "cpu_usage", "aggregation": "avg", "operator": ">", "window_minutes": 5},
        affected_service="api",
        notification_id=9,
        links=Links(
            alert_url="https://t.example.com/ui/alerts/42",
            history_url="https://t.example.com/api/v1/alerts/42/history",
            runbook_url="https://runbooks.example.com/cpu",
        ),
    )


def _dispatch(engine: Engine, notifier: ChannelNotifier, *, now: datetime = FIXED_NOW) -> alert_notifications.DispatchSummary:
    return alert_notifications.dispatch_due(
        session_factory(engine), now=now, notifier=notifier, box=BOX, external_url="https://t.example.com"
    )


class TestEmailFormat:
    def test_subject_says_state_severity_title_group_value_and_condition(self) -> None:
        """One line a person can triage from."""
        assert (
            email_subject(_message()) == "[FIRING] [critical] High CPU Usage (host=web-1): 93.2 (avg(cpu_usage) over 5 min > 80)"
        )
        assert email_subject(_message("resolved")).startswith("[RESOLVED] [critical] High CPU Usage")
        assert email_subject(_message("repeat")).startswith("[STILL FIRING]")

    def test_subject_cannot_carry_a_line_break(self) -> None:
        """A title with CR/LF cannot inject a header."""
        from dataclasses import replace

        subject = email_subject(replace(_message(), title="x\r\nBcc: victim@example.com"))
        assert "\n" not in subject and "\r" not in subject

    def test_body_has_the_figures_labels_and_links(self) -> None:
        """The body lists value, condition, rule, group, service, start, labels, annotations and the links."""
        body = email_body(_message())
        for expected in (
            "The alert 'High CPU Usage' is firing.",
            "Value:     93.2",
            "Condition: avg(cpu_usage) over 5 min > 80",
            "Rule:      High CPU Usage (#7)",
            "Group:     host=web-1",
            "Service:   api",
            "Started:   2026-11-28 04:00:00 UTC",
            "  team = platform",
            "  summary = CPU above 80%",
            "Open the alert: https://t.example.com/ui/alerts/42",
            "Runbook: https://runbooks.example.com/cpu",
            "alert 42, notification 9",
        ):
            assert expected in body, expected
        assert "Ended:" in email_body(_message("resolved"))

    def test_headers(self) -> None:
        """From, To, Date from the injected clock, and the alert's identifiers as X- headers."""
        email = build_email(_message(), sender="a@example.com", recipients=["b@example.com", "c@example.com"], now=FIXED_NOW)
        assert email["To"] == "b@example.com, c@example.com"
        assert email["Date"] == "Thu, 04 Mar 2021 05:06:07 +0000"
        assert email["X-Fernando-Alert-Id"] == "42" and email["Auto-Submitted"] == "auto-generated"


class TestSmtpTransport:
    def test_plain_delivery_records_the_server_reply(self, plain_smtp: SmtpFixture) -> None:
        """Delivered over plain SMTP; the result carries the 250 reply of DATA."""
        email = build_email(_message(), sender="alerts@example.com", recipients=["ops@example.com"], now=FIXED_NOW)
        result = deliver(
            SmtpServer("127.0.0.1", plain_smtp.port, security="none"),
            email,
            sender="alerts@example.com",
            recipients=["ops@example.com"],
        )
        assert result.ok and result.smtp_reply == "250 2.0.0 Message accepted for delivery"
        (received,) = plain_smtp.mailbox.messages
        assert received["rcpt_tos"] == ["ops@example.com"] and not received["tls"]

    def test_starttls_with_the_certificate_trusted_and_auth(self, starttls_smtp: SmtpFixture, certificate: Certificate) -> None:
        """STARTTLS verified against the given CA certificate, then AUTH, then delivery."""
        server = SmtpServer(
            "127.0.0.1", starttls_smtp.port, security="starttls", username=USER, password=PASSWORD, ca_cert=certificate.pem
        )
        email = build_email(_message(), sender=USER, recipients=["ops@example.com"], now=FIXED_NOW)
        result = deliver(server, email, sender=USER, recipients=["ops@example.com"])
        assert result.ok, result
        (received,) = starttls_smtp.mailbox.messages
        assert received["tls"] and received["authenticated"]

    def test_starttls_refuses_an_untrusted_certificate(self, starttls_smtp: SmtpFixture) -> None:
        """Without the CA, the self-signed certificate fails verification: nothing sent, a clear error."""
        server = SmtpServer("127.0.0.1", starttls_smtp.port, security="starttls", username=USER, password=PASSWORD)
        result = deliver(
            server,
            build_email(_message(), sender=USER, recipients=["o@example.com"], now=FIXED_NOW),
            sender=USER,
            recipients=["o@example.com"],
        )
        assert not result.ok and result.error is not None and result.error.startswith("TLS certificate not trusted")
        assert starttls_smtp.mailbox.messages == []

    def test_tls_verify_off_accepts_any_certificate(self, starttls_smtp: SmtpFixture) -> None:
        """tls_verify=false (a lab server) accepts the self-signed certificate."""
        server = SmtpServer(
            "127.0.0.1", starttls_smtp.port, security="starttls", username=USER, password=PASSWORD, tls_verify=False
        )
        result = deliver(
            server,
            build_email(_message(), sender=USER, recipients=["o@example.com"], now=FIXED_NOW),
            sender=USER,
            recipients=["o@example.com"],
        )
        assert result.ok

    def test_starttls_not_offered_is_not_retried(self, plain_smtp: SmtpFixture) -> None:
        """Asking STARTTLS of a server without it fails for good instead of sending in clear."""
        server = SmtpServer("127.0.0.1", plain_smtp.port, security="starttls")
        result = deliver(
            server,
            build_email(_message(), sender="a@example.com", recipients=["o@example.com"], now=FIXED_NOW),
            sender="a@example.com",
            recipients=["o@example.com"],
        )
        assert not result.ok and not result.retryable and "STARTTLS" in (result.error or "")
        assert plain_smtp.mailbox.messages == []

    @pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
    def test_implicit_tls_and_auth(self, tls_smtp: SmtpFixture, certificate: Certificate) -> None:
        """security=tls speaks TLS from the first byte (port 465 style)."""
        server = SmtpServer("127.0.0.1", tls_smtp.port, security="tls", username=USER, password=PASSWORD, ca_cert=certificate.pem)
        result = deliver(
            server,
            build_email(_message(), sender=USER, recipients=["o@example.com"], now=FIXED_NOW),
            sender=USER,
            recipients=["o@example.com"],
        )
        assert result.ok, result
        (received,) = tls_smtp.mailbox.messages
        assert received["tls"] and received["authenticated"]

    def test_a_wrong_password_is_a_535_and_not_retried(self, starttls_smtp: SmtpFixture, certificate: Certificate) -> None:
        """Failed AUTH keeps the server's 535 reply and is not retried."""
        server = SmtpServer(
            "127.0.0.1", starttls_smtp.port, security="starttls", username=USER, password="wrong", ca_cert=certificate.pem
        )
        result = deliver(
            server,
            build_email(_message(), sender=USER, recipients=["o@example.com"], now=FIXED_NOW),
            sender=USER,
            recipients=["o@example.com"],
        )
        assert not result.ok and not result.retryable
        assert result.smtp_reply is not None and result.smtp_reply.startswith("535")
        assert result.error == "authentication failed"

    def test_refused_recipients(self, plain_smtp: SmtpFixture) -> None:
        """One refused recipient of two: delivered, the refusal noted; all refused: a 550 failure, not retried."""
        plain_smtp.mailbox.refuse = {"gone@example.com"}
        server = SmtpServer("127.0.0.1", plain_smtp.port, security="none")
        both = ["ops@example.com", "gone@example.com"]
        partly = deliver(
            server,
            build_email(_message(), sender="a@example.com", recipients=both, now=FIXED_NOW),
            sender="a@example.com",
            recipients=both,
        )
        assert partly.ok and "gone@example.com (550 5.1.1 no such user here)" in (partly.error or "")
        assert plain_smtp.mailbox.messages[0]["rcpt_tos"] == ["ops@example.com"]
        refused = deliver(
            server,
            build_email(_message(), sender="a@example.com", recipients=["gone@example.com"], now=FIXED_NOW),
            sender="a@example.com",
            recipients=["gone@example.com"],
        )
        assert not refused.ok and not refused.retryable and refused.smtp_reply == "550 5.1.1 no such user here"


class TestEmailDispatch:
    def test_an_alert_is_mailed_and_the_reply_logged(self, seed: TenantSeed, plain_smtp: SmtpFixture) -> None:
        """Through the outbox: the email arrives with the alert in it; the delivery log holds the 250 reply."""
        add_channel(
            seed,
            {
                "name": "ops-email",
                "type": "email",
                "to": ["ops@example.com", "sre@example.com"],
                "from": "Alerts <alerts@example.com>",
                "smtp_host": "127.0.0.1",
                "smtp_port": plain_smtp.port,
                "smtp_security": "none",
            },
        )
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["ops-email"]))
        enqueue(seed, alert_id, "firing")
        assert _dispatch(seed.engine, ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED)).sent == 1
        (received,) = plain_smtp.mailbox.messages
        assert received["mail_from"] == "alerts@example.com"
        assert received["rcpt_tos"] == ["ops@example.com", "sre@example.com"]
        email = received["message"]
        assert email["Subject"] == "[FIRING] [critical] High CPU Usage (host=web-1): 93.2 (avg(cpu_usage) over 5 min > 80)"
        assert email["From"] == "Alerts <alerts@example.com>"
        assert email["X-Fernando-Alert-Id"] == str(alert_id)
        body = email.get_content()
        assert f"Open the alert: https://t.example.com/ui/alerts/{alert_id}" in body
        assert "Runbook: https://runbooks.example.com/cpu" in body
        ((outcome, reply, attempt),) = [(d.outcome, d.smtp_reply, d.attempt) for d in deliveries(seed.engine, alert_id)]
        assert (outcome, reply, attempt) == ("sent", "250 2.0.0 Message accepted for delivery", 1)
        status = load_alert(seed.engine, alert_id).notification_status["ops-email"]
        assert status["status"] == "sent" and status["smtp_reply"].startswith("250")

    def test_the_server_smtp_defaults_serve_channels_without_a_server(self, seed: TenantSeed, plain_smtp: SmtpFixture) -> None:
        """{"type": "email", "to": [...]} goes through the SMTP server of the settings, from its sender."""
        add_channel(seed, {"name": "email", "type": "email", "to": ["ops@example.com"]})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["email"]))
        enqueue(seed, alert_id, "firing")
        notifier = ChannelNotifier(
            smtp_defaults=SmtpDefaults(host="127.0.0.1", port=plain_smtp.port, security="none", sender="ft@example.com"),
            timeout_s=5,
        )
        assert _dispatch(seed.engine, notifier).sent == 1
        assert plain_smtp.mailbox.messages[0]["mail_from"] == "ft@example.com"

    def test_without_any_smtp_server_it_is_abandoned_with_a_clear_error(self, seed: TenantSeed) -> None:
        """No smtp_host on the channel and none in the settings: abandoned at once, saying what to set."""
        add_channel(seed, {"name": "email", "type": "email", "to": ["ops@example.com"]})
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["email"]))
        enqueue(seed, alert_id, "firing")
        assert _dispatch(seed.engine, ChannelNotifier(timeout_s=5)).abandoned == 1
        (delivery,) = deliveries(seed.engine, alert_id)
        assert "FERNANDO_TELEMETRY_SMTP_HOST" in (delivery.error or "")

    def test_starttls_auth_channel_with_a_stored_password(
        self, seed: TenantSeed, starttls_smtp: SmtpFixture, certificate: Certificate
    ) -> None:
        """A channel's sealed smtp_password is opened at send time and used for AUTH after STARTTLS."""
        add_channel(
            seed,
            {
                "name": "secure",
                "type": "email",
                "to": ["ops@example.com"],
                "from": USER,
                "smtp_host": "127.0.0.1",
                "smtp_port": starttls_smtp.port,
                "smtp_security": "starttls",
                "smtp_username": USER,
                "smtp_password": PASSWORD,
                "ca_cert": certificate.pem,
            },
        )
        alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["secure"]))
        enqueue(seed, alert_id, "firing")
        assert _dispatch(seed.engine, ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED)).sent == 1
        (received,) = starttls_smtp.mailbox.messages
        assert received["tls"] and received["authenticated"]

    def test_smtp_down_is_recorded_and_blocks_nothing_else(self, seed: TenantSeed) -> None:
        """A refused SMTP connection is a failed attempt to retry, and the alert's webhook is still delivered."""
        with Receiver() as receiver:
            add_channel(
                seed,
                {
                    "name": "email",
                    "type": "email",
                    "to": ["ops@example.com"],
                    "smtp_host": "127.0.0.1",
                    "smtp_port": _free_port(),
                    "smtp_security": "none",
                },
            )
            add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
            alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["email", "hook"]))
            enqueue(seed, alert_id, "firing")
            summary = _dispatch(seed.engine, ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED))
            assert (summary.sent, summary.retrying) == (1, 1)
            assert len(receiver.requests) == 1
        log = {d.channel_name: d for d in deliveries(seed.engine, alert_id)}
        assert log["email"].outcome == "failed" and "ConnectionRefusedError" in (log["email"].error or "")
        assert log["email"].smtp_reply is None
        assert log["hook"].outcome == "sent" and log["hook"].http_status == 200
        status = load_alert(seed.engine, alert_id).notification_status
        assert status["email"]["status"] == "retrying" and status["hook"]["status"] == "sent"
        email_row = next(row for row in outbox(seed.engine, alert_id) if row.channel_name == "email")
        assert email_row.status == "pending" and email_row.next_attempt_at == FIXED_NOW + timedelta(seconds=30)

    def test_a_hanging_smtp_server_times_out_and_the_other_channel_is_delivered(self, seed: TenantSeed) -> None:
        """An SMTP server that accepts TCP and never greets costs one timed-out attempt; the webhook still goes."""
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        stop = threading.Event()
        try:
            with Receiver() as receiver:
                add_channel(
                    seed,
                    {
                        "name": "email",
                        "type": "email",
                        "to": ["o@example.com"],
                        "smtp_host": "127.0.0.1",
                        "smtp_port": silent.getsockname()[1],
                        "smtp_security": "none",
                    },
                )
                add_channel(seed, {"name": "hook", "type": "webhook", "url": receiver.url})
                alert_id = add_alert(seed, rule_id=add_rule(seed, channels=["email", "hook"]))
                enqueue(seed, alert_id, "firing")
                summary = _dispatch(seed.engine, ChannelNotifier(timeout_s=1, targets=LOOPBACK_ALLOWED))
                assert (summary.sent, summary.retrying) == (1, 1)
                assert len(receiver.requests) == 1
        finally:
            stop.set()
            silent.close()
        log = {d.channel_name: d for d in deliveries(seed.engine, alert_id)}
        assert log["email"].outcome == "failed" and "timed out" in (log["email"].error or "")


def test_the_channel_notifier_sends_email_without_a_database(plain_smtp: SmtpFixture) -> None:
    """ChannelNotifier alone: an EmailChannel value is enough to send."""
    channel = EmailChannel(
        name="e", to=("x@example.com",), smtp_host="127.0.0.1", smtp_port=plain_smtp.port, smtp_security="none"
    )
    result = ChannelNotifier(timeout_s=5, targets=LOOPBACK_ALLOWED).send(channel, _message(), now=FIXED_NOW)
    assert result.ok and plain_smtp.mailbox.messages[0]["message"]["X-Fernando-Notification-Id"] == "9"
