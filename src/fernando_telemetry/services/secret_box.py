"""``SecretBox``: encrypts small secrets at rest (channel passwords, webhook URLs, signing secrets) with
Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived by HKDF-SHA256 from the
server's secret key. The entry point builds it from ``runtime.secret_key(settings)``; services receive it."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fernando_telemetry.core.errors import Conflict

__all__ = ["SecretBox", "SecretsUnreadable"]

_INFO = b"fernando-telemetry/notification-channel-secrets/v1"


class SecretsUnreadable(Conflict):
    """Stored secrets that this server's key cannot decrypt (the secret key changed): re-enter them."""

    code = "secrets_unreadable"


class SecretBox:
    """Seal and open a mapping of secret strings; the sealed form is an ASCII Fernet token."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("SecretBox needs a non-empty secret key")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, values: Mapping[str, object]) -> str:
        return self._fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode("utf-8")).decode("ascii")

    def open(self, token: str | None) -> dict[str, object]:
        """The mapping sealed in ``token`` ({} for None); ``SecretsUnreadable`` when this key cannot open it."""
        if not token:
            return {}
        try:
            return dict(json.loads(self._fernet.decrypt(token.encode("ascii"))))
        except (InvalidToken, ValueError) as exc:
            raise SecretsUnreadable(
                "the channel's secrets cannot be decrypted with this server's secret key (was "
                "FERNANDO_TELEMETRY_SECRET_KEY changed?); enter them again"
            ) from exc
