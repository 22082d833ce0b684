"""Where webhooks may go, in one place: ``target_problem`` checks a URL's form before a channel is saved and
before every send; ``TargetPolicy`` checks where it points: loopback, private, link-local, multicast,
reserved and unspecified addresses are refused unless the operator allows their network
(``FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS``), so a channel cannot reach the server's own network.
An IP literal is checked when the channel is saved; a host name is resolved and every address checked
before each send. ``mask_url`` is what the API shows of a URL that may carry a token.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = ["MASK", "TargetPolicy", "mask_url", "parse_networks", "target_problem"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MASK = "****"
MAX_URL_LENGTH = 2048


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        _ = parts.port  # a non-numeric or out-of-range port raises here
    except ValueError:
        return None
    return parts


def target_problem(url: object) -> str | None:
    """Why ``url`` cannot be a webhook target, or None when it can (an absolute http or https URL with a host)."""
    if not isinstance(url, str) or not url:
        return "must be an http:// or https:// URL"
    if len(url) > MAX_URL_LENGTH:
        return f"must be at most {MAX_URL_LENGTH} characters"
    if any(character.isspace() or ord(character) < 32 for character in url):
        return "must not contain spaces or control characters"
    parts = _split(url)
    if parts is None:
        return "is not a valid URL (check the port)"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    return None


def mask_url(url: str, *, keep_path: bool = True) -> str:
    """The URL with its secrets hidden: user and password, every query value (and bare query words), and (``keep_path=False``, for
    URLs that carry the token in the path such as Slack's) the whole path:
    ``https://hooks.slack.com/…****``, ``https://example.com/hook?token=****``."""
    parts = _split(url)
    if parts is None or not parts.hostname:
        return MASK
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = (f"{MASK}@" if parts.username or parts.password else "") + host + (f":{parts.port}" if parts.port else "")
    if not keep_path:
        return f"{parts.scheme}://{netloc}/…{MASK}"
    query = "&".join(
        f"{name}={MASK}" if separator else MASK
        for name, separator, _ in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def parse_networks(text: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs from a comma-separated string (or an iterable); ``ValueError`` names the one that is not a network."""
    items = [item.strip() for item in (text.split(",") if isinstance(text, str) else text)]
    networks = []
    for item in items:
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a network in CIDR form (for example 10.0.0.0/8 or 127.0.0.1/32)") from None
    return tuple(networks)


def _resolve(host: str) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)})


@dataclass(frozen=True)
class TargetPolicy:
    """Which addresses webhooks may reach: public ones, plus the ``allowed_networks`` the operator names."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolve: Callable[[str], Sequence[str]] = _resolve

    def address_problem(self, address: IPAddress) -> str | None:
        if any(address in network for network in self.allowed_networks if network.version == address.version):
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return self.address_problem(address.ipv4_mapped)
        for kind, flagged in (
            ("unspecified", address.is_unspecified),
            ("loopback", address.is_loopback),
            ("link-local", address.is_link_local),
            ("multicast", address.is_multicast),
            ("reserved", address.is_reserved),
            ("private", address.is_private),
        ):
            if flagged:
                return (
                    f"points to {address}, a {kind} address; allow its network with "
                    "FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS to send there"
                )
        return None

    def literal_problem(self, url: str) -> str | None:
        """The check made when a channel is saved: the URL's form, and its host if it is an IP literal or localhost."""
        problem = target_problem(url)
        if problem is not None:
            return problem
        host = (_split(url) or urlsplit("")).hostname or ""
        if host == "localhost" or host.endswith(".localhost"):
            return self.address_problem(ipaddress.ip_address("127.0.0.1"))
        try:
            return self.address_problem(ipaddress.ip_address(host))
        except ValueError:
            return None  # a name: resolved and checked at each send

    def send_problem(self, url: str) -> str | None:
        """The check made before each send: every address the host resolves to must be allowed."""
        problem = self.literal_problem(url)
        if problem is not None:
            return problem
        host = (_split(url) or urlsplit("")).hostname or ""
        try:
            ipaddress.ip_address(host)
            return None  # a literal, checked above
        except ValueError:
            pass
        try:
            addresses = self.resolve(host)
        except OSError as exc:
            return f"host {host!r} does not resolve ({exc})"
        for address in addresses:
            problem = self.address_problem(ipaddress.ip_address(address))
            if problem is not None:
                return f"host {host!r} {problem}"
        return None
