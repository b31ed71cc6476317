"""One place that turns errors into JSON answers with the right status code."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from backend.api.basic_auth import Refused
from backend.api.schemas import ErrorOut
from backend.control.errors import (
    Conflict,
    ControlError,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
)

STATUS_OF = {NotFound: 404, Conflict: 409, Invalid: 422, Forbidden: 403, Unavailable: 503}

# What each error status means, as the OpenAPI document tells clients. Every one of them
# is answered with ErrorOut; FastAPI would otherwise document its own 422 shape
# ({"detail": [...]}), which this API never sends.
ERROR_MEANING = {
    400: "The request could not be read (an invalid Content-Length)",
    401: "No valid admin token (Authorization: Bearer <token>)",
    403: "Not allowed for this cache (a free plan cannot move)",
    404: "No such resource, or an unknown or rotated dashboard URL",
    409: "Conflicts with the current state (a name taken, the primary credential, no "
    "cluster to move to)",
    413: "The request body is over --max-body-bytes",
    429: "Too many failed authentications from this address or for this username",
    422: "Invalid input: a body that is not JSON, a wrong or unknown field, a parameter out "
    "of range; nothing was changed",
    503: "Kept by another backend process that does not answer now (several processes on "
    "one database); try again shortly",
}
BODY_ERRORS = (400, 413, 422)  # what the gate and the parser may answer for any body


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error statuses it really answers, with their shape."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in sorted(set(codes)):
        documented[code] = {"model": ErrorOut, "description": ERROR_MEANING[code]}
        if code == 401:
            documented[code]["headers"] = {
                "WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}
            }
    return documented


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")


def allowed_methods(request: Request) -> str:
    """Every method the request's path answers, for the ``Allow`` of a 405.

    Starlette's 405 names only the methods of the first route whose path matched, and
    one path is often several routes (``GET`` and ``POST /caches``), so a client was told
    ``Allow: GET`` where ``POST`` works too (RFC 9110 15.5.6: list the resource's methods).
    Each method is tried against the app's routes as routing would (included routers are
    routes of their own in FastAPI, so their members are not listed in ``app.routes``).
    ``HEAD`` is answered wherever ``GET`` is (``HeadAsGet``).
    """
    allowed = {
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))


def install(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ControlError)
    async def control_error(request: Request, exc: ControlError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=STATUS_OF.get(type(exc), 400))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            # 422 like every other refused body: the request is well-formed HTTP whose
            # content cannot be processed (RFC 9110 15.5.21), and clients handle one code.
            return JSONResponse({"error": "the request body is not valid JSON"}, status_code=422)
        return JSONResponse({"error": _describe(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's "error parsing the body" for bytes that are not UTF-8: JSON must be
            # (RFC 8259 8.1), so this is invalid JSON like any other, a 422.
            return JSONResponse({"error": "the request body is not valid JSON"}, status_code=422)
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return JSONResponse(
            {"error": str(exc.detail)}, status_code=exc.status_code, headers=headers or None
        )
