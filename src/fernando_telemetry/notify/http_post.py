"""One JSON POST to a webhook (Slack or generic) with ``httpx``: the target is checked and pinned first (the
connection goes to the checked address, the URL's host kept in the Host header and as the TLS server name),
redirects are not followed, and the answer becomes a ``SendResult`` whose errors say nothing about the
server's network (no addresses, no resolver or socket messages)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import httpx

from fernando_telemetry.notify.result import SendResult
from fernando_telemetry.notify.targets import TargetPolicy, TargetRefused, mask_url

__all__ = ["USER_AGENT", "post_json", "retryable_status"]

USER_AGENT = "fernando-telemetry-notify/1"
_BODY_EXCERPT = 300


def retryable_status(status: int) -> bool:
    """5xx, 408 (timeout), 425 (too early) and 429 (rate limited) may pass on a retry; other 4xx and 3xx will not."""
    return status >= 500 or status in (408, 425, 429)


def post_json(url: str, body: bytes, *, headers: Mapping[str, str], timeout_s: float, targets: TargetPolicy) -> SendResult:
    problem = targets.literal_problem(url)
    if problem is not None:
        return SendResult.failure(f"webhook target refused: the URL {problem}", retryable=False)
    target = httpx.URL(url)
    try:
        address = targets.pin(target.host)
    except TargetRefused as exc:
        return SendResult.failure(f"webhook target refused: {exc.reason}", retryable=exc.retryable)
    host_header = target.netloc.decode("ascii").rpartition("@")[2]
    pinned = target.copy_with(host=address)
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            response = client.post(
                pinned,
                content=body,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers, "Host": host_header},
                extensions={"sni_hostname": target.host},
            )
            latency_ms = (time.perf_counter() - started) * 1000.0
    except httpx.TimeoutException as exc:
        return SendResult.failure(f"timed out after {timeout_s:g} s ({type(exc).__name__})", latency_ms=_since(started))
    except httpx.ConnectError:
        # the socket's or TLS library's words would tell a port scanner which ports are open: one reason for all
        return SendResult.failure(
            "could not connect to the webhook target (refused, unreachable or TLS failed)", latency_ms=_since(started)
        )
    except httpx.HTTPError as exc:
        return SendResult.failure(
            f"the webhook target did not answer with HTTP ({type(exc).__name__})", latency_ms=_since(started)
        )
    status = response.status_code
    if 200 <= status < 300:
        return SendResult(ok=True, http_status=status, latency_ms=latency_ms)
    excerpt = " ".join(response.text[:_BODY_EXCERPT].split())
    if 300 <= status < 400:
        error = f"HTTP {status}: redirect to {mask_url(response.headers.get('location', '?'))} not followed"
    else:
        error = f"HTTP {status}" + (f": {excerpt}" if excerpt else "")
    return SendResult(ok=False, http_status=status, error=error, retryable=retryable_status(status), latency_ms=latency_ms)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
