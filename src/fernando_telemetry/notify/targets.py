"""Where outbound connections made on a tenant's behalf (webhooks, Slack, a channel's own SMTP server) may go,
in one place: ``target_problem`` checks a URL's form before a channel is saved and before every send;
``TargetPolicy`` checks where it points: loopback, private, link-local, multicast, reserved, shared (CGNAT)
and unspecified addresses, and the IPv6 forms that embed one (IPv4-mapped and -compatible, 6to4
``2002::/16``, NAT64 ``64:ff9b::/96`` and ``64:ff9b:1::/48``, Teredo), are refused unless the operator allows
their network (``FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS``), so a channel cannot reach the server's own
network. An IP literal is checked when the channel is saved; before each send ``TargetPolicy.pin`` resolves a
host name once, checks every address, and returns the address to connect to: the transports connect to that
address (the name kept for the Host header, SNI and certificate checks), so a second DNS answer cannot move
the connection (DNS rebinding). Reasons given for a host name never include what it resolved to.
``mask_url`` is what the API shows of a URL that may carry a token.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

__all__ = ["MASK", "TargetPolicy", "TargetRefused", "mask_url", "parse_networks", "target_problem"]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MASK = "****"
ALLOW_SETTING = "FERNANDO_TELEMETRY_WEBHOOK_ALLOWED_NETWORKS"
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class TargetRefused(Exception):
    """A target that may not be contacted now; ``reason`` is safe to show the tenant, ``retryable`` says whether
    it may pass later (a name that does not resolve during a resolver outage) or never will (a refused address)."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries: mapped, compatible, 6to4, NAT64 or Teredo (the client's)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


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
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_v4(address)
            if embedded is not None:
                problem = self.address_problem(embedded)
                if problem is not None:
                    return problem
                if address.ipv4_mapped is None:
                    # 6to4, NAT64, Teredo: relayed by gateways the server's network may run; allowed only by name
                    return (
                        f"points to {address}, an address that embeds an IPv4 address; allow its network with "
                        f"{ALLOW_SETTING} to send there"
                    )
                return None
        for kind, flagged in (
            ("unspecified", address.is_unspecified),
            ("loopback", address.is_loopback),
            ("link-local", address.is_link_local),
            ("multicast", address.is_multicast),
            ("reserved", address.is_reserved),
            ("private", address.is_private),
            ("shared (carrier-grade NAT)", address in _SHARED),
            ("non-public", not address.is_global),
        ):
            if flagged:
                return f"points to {address}, a {kind} address; allow its network with {ALLOW_SETTING} to send there"
        return None

    def host_problem(self, host: str) -> str | None:
        """The check made when a channel is saved, for a bare host (``smtp_host``): an IP literal or localhost."""
        host = host.strip("[]") if host.startswith("[") else host
        if host == "localhost" or host.endswith(".localhost"):
            return self.address_problem(ipaddress.ip_address("127.0.0.1"))
        try:
            return self.address_problem(ipaddress.ip_address(host))
        except ValueError:
            return None  # a name: resolved and checked at each send

    def pin(self, host: str) -> str:
        """The address to connect to for ``host``: the literal itself, or the first address the name resolves to,
        after every address it resolves to was checked (one resolution; the caller connects to the answer).
        ``TargetRefused`` says why not, without naming what the name resolved to."""
        host = host.strip("[]") if host.startswith("[") else host
        problem = self.host_problem(host)
        if problem is not None:
            raise TargetRefused(f"the target {problem}")
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        try:
            addresses = [ipaddress.ip_address(address) for address in self.resolve(host)]
        except (OSError, UnicodeError, ValueError):
            addresses = []
        if not addresses:
            raise TargetRefused(f"host {host!r} does not resolve (tried again later)", retryable=True)
        if any(self.address_problem(address) is not None for address in addresses):
            raise TargetRefused(
                f"host {host!r} resolves to an address outbound connections may not reach (loopback, private, "
                f"link-local or another non-public network); the operator may allow a network with {ALLOW_SETTING}"
            )
        return str(addresses[0])

    def literal_problem(self, url: str) -> str | None:
        """The check made when a channel is saved: the URL's form, and its host if it is an IP literal or localhost."""
        problem = target_problem(url)
        if problem is not None:
            return problem
        return self.host_problem((_split(url) or urlsplit("")).hostname or "")

    def send_problem(self, url: str) -> str | None:
        """The check made before each send (the URL's form, every address its host resolves to), as a reason."""
        problem = self.literal_problem(url)
        if problem is not None:
            return problem
        try:
            self.pin((_split(url) or urlsplit("")).hostname or "")
        except TargetRefused as exc:
            return exc.reason
        return None
