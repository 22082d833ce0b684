"""The dashboard's session cookie: a signed, HTTP-only, SameSite value holding the API key and a CSRF token.

The cookie is signed and timestamped with the app's secret key (``itsdangerous``), so it cannot be forged,
altered or replayed after ``MAX_AGE_S``; the API key inside is encrypted too (Fernet, key derived by HKDF from
the secret key), so a leaked cookie does not show the key. The key is checked against the database on every
request, so a revoked key is signed out at once; signing out records the cookie's session id, so the
old cookie no longer signs in either. Anonymous visitors get a cookie too (a CSRF token only), so
the sign-in form is protected like every other form. Imports nothing of the project.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "MAX_AGE_S",
    "SessionCodec",
    "SessionData",
    "SignedOutSessions",
    "new_csrf_token",
    "new_session_id",
    "same_token",
]

COOKIE_NAME = "ft_session"
CSRF_FIELD = "csrf_token"
"""Name of the hidden field every dashboard form carries."""
MAX_AGE_S = 12 * 3600
"""A sign-in lasts this long; the cookie itself ends with the browser session."""
_SALT = "fernando-telemetry.dashboard.session"
_KEY_INFO = b"fernando-telemetry/dashboard-session-key/v1"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def new_session_id() -> str:
    return secrets.token_urlsafe(16)


def same_token(expected: str | None, presented: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


@dataclass(frozen=True)
class SessionData:
    """What the cookie holds: the CSRF token, and the API key and a session id once signed in."""

    csrf_token: str
    api_key: str | None = None
    session_id: str | None = None


class SessionCodec:
    """Signs and reads session cookies with one secret key."""

    def __init__(self, secret_key: str, *, max_age_s: int = MAX_AGE_S) -> None:
        if not secret_key:
            raise ValueError("the dashboard needs a non-empty secret key")
        self._serializer = URLSafeTimedSerializer(secret_key, salt=_SALT)
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_INFO).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self.max_age_s = max_age_s

    def dumps(self, data: SessionData) -> str:
        payload = {"c": data.csrf_token}
        if data.api_key is not None:
            payload["k"] = self._fernet.encrypt(data.api_key.encode("utf-8")).decode("ascii")
        if data.session_id is not None:
            payload["s"] = data.session_id
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> SessionData | None:
        """The session in a cookie value; None when absent, tampered with, expired or malformed."""
        if not value:
            return None
        try:
            payload = self._serializer.loads(value, max_age=self.max_age_s)
        except BadSignature:  # SignatureExpired is a BadSignature too
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            return None
        sealed = payload.get("k")
        if sealed is None:
            return SessionData(csrf_token=payload["c"])
        try:
            api_key = self._fernet.decrypt(str(sealed).encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError):
            return None
        session_id = payload.get("s")
        return SessionData(
            csrf_token=payload["c"], api_key=api_key, session_id=session_id if isinstance(session_id, str) else None
        )


class SignedOutSessions:
    """Session ids signed out before their cookie expired, remembered until it would have (``MAX_AGE_S``).

    Held in the server's memory: a restart forgets them (see docs/SECURITY.md). Thread-safe; the clock is
    passed in (monotonic seconds).
    """

    def __init__(self, *, max_age_s: float = MAX_AGE_S) -> None:
        self.max_age_s = max_age_s
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def sign_out(self, session_id: str, *, now_s: float) -> None:
        with self._lock:
            self._until = {kept: until for kept, until in self._until.items() if until > now_s}
            self._until[session_id] = now_s + self.max_age_s

    def is_signed_out(self, session_id: str, *, now_s: float) -> bool:
        with self._lock:
            until = self._until.get(session_id)
        return until is not None and until > now_s
