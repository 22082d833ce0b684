"""API keys as values: scopes, the token format, and the hash that is all the database ever sees."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

__all__ = ["KEY_PREFIX", "Principal", "Scope", "display_prefix", "hash_key", "looks_like_key", "new_token", "same_hash"]

KEY_PREFIX = "ft_"


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key, its license (None for an admin key) and what it may do."""

    api_key_id: int
    license_id: int | None
    scopes: frozenset[str]

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.scopes


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def same_hash(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def display_prefix(token: str) -> str:
    """The first characters of a key, stored to tell keys apart in listings (never enough to use it)."""
    return token[: len(KEY_PREFIX) + 6]


def looks_like_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX) and 20 <= len(token) <= 100 and token.isascii()


def new_token() -> str:
    """A fresh API key: the prefix and 48 random hex digits (the default id source of key creation)."""
    return KEY_PREFIX + secrets.token_hex(24)
