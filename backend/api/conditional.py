"""Conditional GET for the feeds: ``ETag`` / ``If-None-Match`` and ``Last-Modified`` /
``If-Modified-Since`` (RFC 9110 §13), so a feed reader polling every minute downloads a
feed only when it changed."""

from __future__ import annotations

import email.utils
import hashlib
from datetime import UTC, datetime

from fastapi import Request, Response


def etag_of(body: bytes) -> str:
    """A strong validator: the body's digest (the same rows always give the same bytes)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison: ``W/"x"`` matches ``"x"``."""
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _not_modified_since(header: str, last_modified: int) -> bool:
    try:
        since = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return False  # an unreadable date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return last_modified <= since.timestamp()


def conditional_response(
    request: Request, body: bytes, media_type: str, last_modified: float | None
) -> Response:
    """``body`` with its validators, or an empty 304 when the client's copy is current.

    ``If-None-Match`` wins over ``If-Modified-Since`` when both are sent (RFC 9110
    §13.1.3); ``Last-Modified`` is whole seconds, as HTTP dates are.
    """
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    modified = None if last_modified is None else int(last_modified)
    if modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(
            datetime.fromtimestamp(modified, UTC), usegmt=True
        )
    if_none_match = request.headers.get("if-none-match")
    if_modified_since = request.headers.get("if-modified-since")
    if if_none_match is not None:
        fresh = _matches(if_none_match, etag)
    elif if_modified_since is not None and modified is not None:
        fresh = _not_modified_since(if_modified_since, modified)
    else:
        fresh = False
    if fresh:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)
