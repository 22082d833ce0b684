"""Routes of the query API (summaries); filled in by the analytics work."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])
