"""Where webhooks may go, in one place: ``target_problem`` checks a URL before a channel is saved and again
before every send; ``mask_url`` is what the API shows of a URL that may carry a token. Pure.

Loopback and private addresses are allowed for now; an allow-list of networks belongs in ``target_problem``
(and only there) when it comes.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["MASK", "mask_url", "target_problem"]

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
