"""Reading request bodies: content type and encoding checked, gzip inflated in bounded memory, size capped."""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

import orjson
from fastapi import Request

from fernando_telemetry.core.errors import Malformed, PayloadTooLarge, UnsupportedMediaType

__all__ = ["media_type", "parse_json", "read_body", "read_json_bytes"]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The body, gunzipped when ``Content-Encoding: gzip``; ``PayloadTooLarge`` past ``max_bytes`` decompressed."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", ""):
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported: send gzip or no encoding")
    declared = request.headers.get("content-length")
    if encoding != "gzip" and declared and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the body is {declared} bytes; at most {max_bytes} are accepted")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
    suffix = " once decompressed" if inflater is not None else ""
    members = 0
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        data = chunk
        while data:
            if inflater is None:
                piece, data = data, b""
            else:
                if inflater.eof:
                    # RFC 1952: a gzip body may hold several members, read as one stream (never drop what follows)
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    members += 1
                try:
                    # never inflate more than the limit allows, whatever the compression ratio
                    piece = inflater.decompress(data, max_bytes - size + 1)
                except zlib.error as exc:
                    where = (
                        "the bytes after the gzip stream are not another gzip member" if members else "the gzip body is corrupt"
                    )
                    raise Malformed(f"{where}: {exc}") from None
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            size += len(piece)
            if size > max_bytes:
                raise PayloadTooLarge(f"the body is over the limit of {max_bytes} bytes{suffix}")
            parts.append(piece)
    if inflater is not None and not inflater.eof:
        raise Malformed("the gzip body is truncated")
    return b"".join(parts)


async def read_json_bytes(request: Request, *, max_bytes: int) -> bytes:
    """The body of an ``application/json`` request, not yet parsed (parse it off the event loop)."""
    kind = media_type(request)
    if kind != "application/json":
        raise UnsupportedMediaType(f"Content-Type {kind or '(none)'!r} is not supported: send application/json")
    return await read_body(request, max_bytes=max_bytes)


_LONG_DIGITS = re.compile(rb"\d{20}")
"""A run of 20 digits: maybe an integer past 64 bits, which orjson would turn into a rounded float."""


def parse_json(body: bytes) -> Any:
    """The JSON document of a body. Integers stay exact: orjson parses up to 64 bits, and a body that may hold a
    longer integer is parsed again by the standard library (Python ints), so no integer is silently rounded."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"the body is not valid JSON: {exc}") from None
    if _LONG_DIGITS.search(body) is None:
        return document
    try:
        return json.loads(body, parse_constant=_no_constant)
    except ValueError as exc:  # past Python's digit limit for int(), say
        raise Malformed(f"the body is not valid JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
