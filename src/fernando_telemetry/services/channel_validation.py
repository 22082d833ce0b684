"""Validation of a notification channel's spec: every problem per field at once, and the spec split into its
public config (secrets masked) and its secrets. Here rather than in core because URLs and SMTP hosts are
checked against the outbound address policy (``notify.targets``). Imports core and notify.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from email.utils import parseaddr
from typing import Any

from fernando_telemetry.core.errors import FieldProblems
from fernando_telemetry.notify.smtp import SECURITY_MODES
from fernando_telemetry.notify.targets import MASK, TargetPolicy, mask_url, target_problem
from fernando_telemetry.notify.webhook_format import FORMATS

__all__ = ["CHANNEL_TYPES", "COMMON_FIELDS", "REQUIRED_FIELDS", "SECRET_FIELDS", "TYPE_FIELDS", "validate"]

CHANNEL_TYPES = ("email", "slack", "webhook")
COMMON_FIELDS = ("name", "type", "send_resolved", "enabled")
TYPE_FIELDS: dict[str, tuple[str, ...]] = {
    "email": (
        "to",
        "from",
        "smtp_host",
        "smtp_port",
        "smtp_security",
        "smtp_username",
        "smtp_password",
        "tls_verify",
        "ca_cert",
    ),
    "slack": ("webhook_url",),
    "webhook": ("url", "secret", "format", "headers"),
}
REQUIRED_FIELDS = {"email": ("to",), "slack": ("webhook_url",), "webhook": ("url",)}
SECRET_FIELDS = frozenset({"smtp_password", "webhook_url", "url", "secret", "headers"})

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
HOST_PATTERN = re.compile(r"[A-Za-z0-9._\-\[\]:]{1,253}")
HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})
MAX_RECIPIENTS = 50
MIN_SIGNING_SECRET = 16


def _address_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be an email address"
    if len(value) > 254 or any(character in value for character in "\r\n"):
        return "must be an email address of at most 254 characters on one line"
    address = parseaddr(value)[1]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or " " in address or "." not in domain.strip("."):
        return "must be an email address such as ops@example.com"
    return None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _url_problem(url: Any, targets: TargetPolicy | None) -> str | None:
    """The URL's form, and where it points when a policy is given (the API and the CLI always give one)."""
    return target_problem(url) if targets is None or not isinstance(url, str) else targets.literal_problem(url)


def validate(
    spec: Mapping[str, Any], problems: FieldProblems, targets: TargetPolicy | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a full channel spec, adding every problem to ``problems``; returns (public config, secrets) of the
    type's fields, the secrets to be sealed and the config holding only their masked form."""
    nul_fields = [key for key, value in spec.items() if _has_nul(key) or _has_nul(value)]
    for key in nul_fields:
        problems.add(key.replace("\x00", "\\0"), "must not contain NUL characters")
    if nul_fields:
        return {}, {}  # PostgreSQL cannot store them: say so, and check nothing else
    channel_type = spec.get("type")
    if "type" in spec and not isinstance(channel_type, str):
        problems.add("type", "must be a string naming one channel type", allowed=CHANNEL_TYPES)
        channel_type = None  # a list or an object is not hashable: nothing below may look it up
    fields = TYPE_FIELDS.get(channel_type, ()) if isinstance(channel_type, str) else ()
    for key in spec:
        if key not in COMMON_FIELDS and key not in fields:
            if isinstance(channel_type, str) and channel_type in TYPE_FIELDS:
                problems.add(key, f"is not a field of a {channel_type} channel", allowed=[*COMMON_FIELDS, *fields])
            elif key not in {field for names in TYPE_FIELDS.values() for field in names}:
                problems.add(key, "is not a known field")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        problems.add("name", "must be 1 to 100 letters, digits, '.', '_', ':' or '-', starting with a letter or digit")
    if channel_type not in CHANNEL_TYPES and "type" not in {detail["field"] for detail in problems.details}:
        problems.add("type", "must be one of the channel types", allowed=CHANNEL_TYPES)
    for flag in ("send_resolved", "enabled", "tls_verify"):
        if flag in spec and not isinstance(spec[flag], bool):
            problems.add(flag, "must be true or false")
    if channel_type not in TYPE_FIELDS:
        return {}, {}
    for required in REQUIRED_FIELDS[channel_type]:
        if spec.get(required) in (None, "", []):
            problems.add(required, f"is required for a {channel_type} channel")
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    present = {key: spec[key] for key in fields if spec.get(key) is not None}
    if channel_type == "email":
        _validate_email(present, problems, config, secrets, targets)
    elif channel_type == "slack":
        url = present.get("webhook_url")
        if url is not None:
            problem = _url_problem(url, targets)
            if problem:
                problems.add("webhook_url", problem)
            else:
                secrets["webhook_url"] = url
                config["webhook_url"] = mask_url(url, keep_path=False)
    else:
        _validate_webhook(present, problems, config, secrets, targets)
    return config, secrets


def _validate_email(
    present: dict[str, Any],
    problems: FieldProblems,
    config: dict[str, Any],
    secrets: dict[str, Any],
    targets: TargetPolicy | None,
) -> None:
    to = present.get("to")
    if to is not None:
        recipients = [to] if isinstance(to, str) else to
        if not isinstance(recipients, list) or not recipients:
            problems.add("to", "must be a list of email addresses")
        elif len(recipients) > MAX_RECIPIENTS:
            problems.add("to", f"at most {MAX_RECIPIENTS} recipients")
        else:
            for index, recipient in enumerate(recipients):
                problem = _address_problem(recipient)
                if problem:
                    problems.add(f"to[{index}]", problem)
            config["to"] = list(dict.fromkeys(r.strip() for r in recipients if isinstance(r, str)))
    if "from" in present:
        problem = _address_problem(present["from"])
        if problem:
            problems.add("from", problem)
        config["from"] = present["from"]
    if "smtp_host" in present:
        host = present["smtp_host"]
        if not isinstance(host, str) or not HOST_PATTERN.fullmatch(host):
            problems.add("smtp_host", "must be a host name or IP address")
        elif targets is not None:
            problem = targets.host_problem(host)  # the same policy as webhooks: a name is checked at each send
            if problem:
                problems.add("smtp_host", problem)
        config["smtp_host"] = host
    if "smtp_port" in present:
        port = present["smtp_port"]
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.add("smtp_port", "must be a port number from 1 to 65535")
        config["smtp_port"] = port
    if "smtp_security" in present:
        if present["smtp_security"] not in SECURITY_MODES:
            problems.add("smtp_security", "must be one of the security modes", allowed=SECURITY_MODES)
        config["smtp_security"] = present["smtp_security"]
    if "smtp_username" in present:
        if not isinstance(present["smtp_username"], str) or not present["smtp_username"]:
            problems.add("smtp_username", "must be a non-empty string")
        config["smtp_username"] = present["smtp_username"]
    if "smtp_password" in present:
        if not isinstance(present["smtp_password"], str):
            problems.add("smtp_password", "must be a string")
        elif "smtp_username" not in present:
            problems.add("smtp_password", "needs smtp_username")
        secrets["smtp_password"] = present["smtp_password"]
        config["smtp_password"] = MASK
    if "tls_verify" in present:
        config["tls_verify"] = present["tls_verify"]
    if "ca_cert" in present:
        pem = present["ca_cert"]
        if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
            problems.add("ca_cert", "must be PEM text (-----BEGIN CERTIFICATE-----)")
        else:
            try:
                ssl.create_default_context(cadata=pem)
            except (ssl.SSLError, ValueError) as exc:
                problems.add("ca_cert", f"is not a readable certificate ({exc})")
        config["ca_cert"] = pem
    smtp_own = {"smtp_port", "smtp_security", "smtp_username", "smtp_password", "tls_verify", "ca_cert"} & present.keys()
    if smtp_own and "smtp_host" not in present:
        problems.add(
            "smtp_host", f"is required when {', '.join(sorted(smtp_own))} is given (the server defaults apply only as a whole)"
        )


def _validate_webhook(
    present: dict[str, Any],
    problems: FieldProblems,
    config: dict[str, Any],
    secrets: dict[str, Any],
    targets: TargetPolicy | None,
) -> None:
    url = present.get("url")
    if url is not None:
        problem = _url_problem(url, targets)
        if problem:
            problems.add("url", problem)
        else:
            secrets["url"] = url
            config["url"] = mask_url(url)
    if "secret" in present:
        secret = present["secret"]
        if not isinstance(secret, str) or len(secret) < MIN_SIGNING_SECRET or len(secret) > 1024:
            problems.add("secret", f"must be a string of {MIN_SIGNING_SECRET} to 1024 characters (e.g. openssl rand -hex 32)")
        secrets["secret"] = secret
        config["secret"] = MASK
    config["format"] = present.get("format", "native")
    if config["format"] not in FORMATS:
        problems.add("format", "must be one of the webhook formats", allowed=FORMATS)
    if "headers" in present:
        headers = present["headers"]
        if not isinstance(headers, dict) or len(headers) > 20:
            problems.add("headers", "must be an object of at most 20 header names and values")
        else:
            for header, value in headers.items():
                if not HEADER_NAME.fullmatch(header):
                    problems.add(f"headers.{header}", "is not a valid header name")
                elif header.lower() in RESERVED_HEADERS or header.lower().startswith("x-fernando-"):
                    problems.add(f"headers.{header}", "is set by the sender and cannot be given")
                if not isinstance(value, str) or len(value) > 4096 or any(c in value for c in "\r\n\0"):
                    problems.add(f"headers.{header}", "must be a string of at most 4096 characters on one line")
            secrets["headers"] = headers
            config["headers"] = {header: MASK for header in headers}
