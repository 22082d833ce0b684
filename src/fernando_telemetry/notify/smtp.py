"""Email over SMTP with ``smtplib``: plain, STARTTLS or implicit TLS, optional AUTH; the server's replies are
kept so the delivery log can show them (``250 ...``, ``535 ...``).

A channel's own server is checked by the ``TargetPolicy`` (as webhooks are) and the connection pinned to the
checked address (the name kept for TLS). Replies are shown only once the server greeted as an SMTP server
(``220``): what anything else says when connected to (another service's banner) and socket errors are never
echoed, so a channel cannot be used to scan ports and grab banners."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.notify.targets import TargetPolicy, TargetRefused

__all__ = ["SECURITY_MODES", "SmtpServer", "deliver", "tls_context"]

SECURITY_MODES = ("none", "starttls", "tls")
"""``none``: plain SMTP; ``starttls``: plain, then upgraded (refused if the server does not offer it); ``tls``: TLS from the start (port 465)."""

DEFAULT_PORTS = {"none": 25, "starttls": 587, "tls": 465}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int | None = None
    """None: 25, 587 or 465 by ``security``."""
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0
    tls_verify: bool = True
    """False accepts any certificate (a lab server); prefer ``ca_cert`` for a private CA or a self-signed one."""
    ca_cert: str | None = None
    """PEM certificate(s) to trust instead of the system's CAs."""
    local_hostname: str | None = None
    """The name sent in EHLO; None lets smtplib use this host's FQDN."""

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS.get(self.security, 25)


def tls_context(server: SmtpServer) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=server.ca_cert) if server.ca_cert else ssl.create_default_context()
    if not server.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _reply(code: int, text: bytes | str) -> str:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(message.split())}".strip()


class _Refused(Exception):
    def __init__(self, reply: str, code: int, error: str) -> None:
        super().__init__(error)
        self.reply, self.code, self.error = reply, code, error


class _NotSmtp(Exception):
    """The peer did not greet with 220: whatever it said stays out of every result."""


class _Pinned(smtplib.SMTP):
    """Connects to ``address`` (the checked one) whatever ``host`` resolves to now; ``host`` stays the TLS name."""

    address: str | None = None
    _host: str  # smtplib.SMTP.__init__ sets it; typeshed leaves it out

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.address or host, port), timeout, self.source_address)

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()
        if not getattr(self, "_greeted", False):
            if code != 220:
                raise _NotSmtp()
            self._greeted = True
        return code, text


class _PinnedTls(smtplib.SMTP_SSL):
    address: str | None = None
    _host: str  # smtplib.SMTP.__init__ sets it; typeshed leaves it out

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        raw = socket.create_connection((self.address or host, port), timeout, self.source_address)
        return self.context.wrap_socket(raw, server_hostname=self._host)

    def getreply(self) -> tuple[int, bytes]:
        code, text = super().getreply()
        if not getattr(self, "_greeted", False):
            if code != 220:
                raise _NotSmtp()
            self._greeted = True
        return code, text


def _close(client: smtplib.SMTP) -> None:
    # QUIT after an accepted message: its answer changes nothing (a retry would send the message twice)
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        client.close()


def deliver(
    server: SmtpServer,
    email: EmailMessage,
    *,
    sender: str,
    recipients: Sequence[str],
    targets: TargetPolicy | None = None,
) -> SendResult:
    """Send ``email`` to ``recipients``; ``ok`` when the server accepted the message for at least one of them.

    ``targets``: the policy the server's address must pass (a tenant's server); None for the operator's own
    (the SMTP settings). SMTP 5xx replies and failed authentication are not retryable; 4xx replies and network
    errors are."""
    started = time.perf_counter()

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000.0

    address: str | None = None
    if targets is not None:
        try:
            address = targets.pin(server.host)
        except TargetRefused as exc:
            return SendResult.failure(f"SMTP server refused: {exc.reason}", retryable=exc.retryable)
    try:
        context = tls_context(server) if server.security in ("starttls", "tls") else None
        client: _Pinned | _PinnedTls
        if server.security == "tls":
            client = _PinnedTls(local_hostname=server.local_hostname, timeout=server.timeout_s, context=context)
        else:
            client = _Pinned(local_hostname=server.local_hostname, timeout=server.timeout_s)
        client.address = address
        client._host = server.host.strip("[]")  # the TLS server name (smtplib sets it only when given a host at once)
        try:
            client.connect(server.host, server.effective_port)
        except BaseException:
            client.close()
            raise
        try:
            client.ehlo()
            if server.security == "starttls":
                if not client.has_extn("starttls"):
                    return SendResult(
                        ok=False,
                        error="the server does not offer STARTTLS (set smtp_security to none or tls)",
                        retryable=False,
                        latency_ms=elapsed(),
                    )
                client.starttls(context=context)
                client.ehlo()
            if server.username:
                client.login(server.username, server.password or "")
            code, text = client.mail(sender)
            if code != 250:
                raise _Refused(_reply(code, text), code, f"sender {sender} refused")
            refused: dict[str, str] = {}
            for recipient in recipients:
                code, text = client.rcpt(recipient)
                if code not in (250, 251):
                    refused[recipient] = _reply(code, text)
            if len(refused) == len(recipients):
                first = next(iter(refused.values()))
                raise _Refused(
                    first,
                    int(first.split()[0]),
                    "every recipient refused: " + "; ".join(f"{r} ({why})" for r, why in refused.items()),
                )
            # CRLF line ends, as SMTP wants them (smtplib fixes line ends of str messages only)
            code, text = client.data(email.as_bytes(policy=SMTP_POLICY))
            if code != 250:
                raise _Refused(_reply(code, text), code, "message refused")
            reply = _reply(code, text)
        finally:
            _close(client)
        error = ("some recipients refused: " + "; ".join(f"{r} ({why})" for r, why in refused.items())) if refused else None
        return SendResult(ok=True, smtp_reply=reply, error=error, latency_ms=elapsed())
    except _NotSmtp:
        return SendResult.failure("the server did not greet as an SMTP server (no 220 reply)", latency_ms=elapsed())
    except _Refused as exc:
        return SendResult(
            ok=False, smtp_reply=exc.reply, error=exc.error, retryable=not 500 <= exc.code < 600, latency_ms=elapsed()
        )
    except smtplib.SMTPAuthenticationError as exc:
        return SendResult(
            ok=False,
            smtp_reply=_reply(exc.smtp_code, exc.smtp_error),
            error="authentication failed",
            retryable=False,
            latency_ms=elapsed(),
        )
    except smtplib.SMTPResponseException as exc:
        return SendResult(
            ok=False,
            smtp_reply=_reply(exc.smtp_code, exc.smtp_error),
            error=f"{type(exc).__name__}",
            retryable=not 500 <= exc.smtp_code < 600,
            latency_ms=elapsed(),
        )
    except smtplib.SMTPNotSupportedError as exc:
        return SendResult(ok=False, error=f"the server does not support it: {exc}", retryable=False, latency_ms=elapsed())
    except ssl.SSLCertVerificationError as exc:
        return SendResult(ok=False, error=f"TLS certificate not trusted: {exc.verify_message or exc}", latency_ms=elapsed())
    except TimeoutError:
        return SendResult.failure(f"timed out after {server.timeout_s:g} s", latency_ms=elapsed())
    except (OSError, smtplib.SMTPException) as exc:
        if isinstance(exc.__context__, TimeoutError):  # smtplib reports a read timeout as a disconnection
            return SendResult.failure(f"timed out after {server.timeout_s:g} s", latency_ms=elapsed())
        # the socket's words (refused, unreachable, reset) would make a port scanner of the channel: one reason
        return SendResult.failure(
            f"could not talk to the SMTP server ({type(exc).__name__}: connection refused, closed or unreachable)",
            latency_ms=elapsed(),
        )
