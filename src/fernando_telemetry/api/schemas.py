"""Pydantic models of the HTTP edge: admin bodies, and the documented shapes of ingest requests and answers.

Ingest bodies are parsed by the core decoders (per-item errors); the models here document them in OpenAPI.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["IngestAnswer", "LicenseIn", "LicenseOut", "Rejected", "UserIn", "UserOut", "ingest_body_schema"]


class Rejected(BaseModel):
    index: int = Field(description="Position of the item in the request's array")
    field: str | None = Field(description="The item's field at fault, if one")
    reason: str = Field(description="What was wrong and what is accepted")


class IngestAnswer(BaseModel):
    accepted: int = Field(description="Items committed (or already stored by an earlier try)")
    rejected: list[Rejected] = Field(description="Items refused, each with its index and reason")


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=200)
    license_id: int | None = Field(default=None, ge=1, description="The user's license; required here or as ?license_id=")
    is_active: bool = True
    attributes: dict[str, Any] = Field(default_factory=dict)


class UserOut(UserIn):
    user_id: str
    license_id: int
    first_seen_at: datetime | None = Field(description="When ingest first received a row of the license naming the user")
    last_seen_at: datetime | None = Field(description="When ingest last did (at most the ingest cache's TTL behind)")
    origin: str = Field(description="platform (put here), ingest (registered on first sight) or migration")
    created_at: datetime
    updated_at: datetime


class LicenseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    plan: str | None = Field(default=None, max_length=64)
    status: str = Field(default="active", max_length=32)
    max_users: int | None = Field(default=None, ge=0)
    valid_until: datetime | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class LicenseOut(LicenseIn):
    license_id: int
    created_at: datetime
    updated_at: datetime


def ingest_body_schema(body_key: str, fields: dict[str, str], example: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for a native ingest endpoint (``{body_key: [item, ...]}``)."""
    item = {
        "type": "object",
        "additionalProperties": False,
        "properties": {name: {"description": description} for name, description in fields.items()},
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": [body_key],
                        "properties": {body_key: {"type": "array", "items": item}},
                    },
                    "example": {body_key: [example]},
                }
            },
        }
    }
