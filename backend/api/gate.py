"""The API's door: who is asking and how much they send, settled before a body is read.

The API shares the event loop with memcache traffic, so a request body is work and memory
taken from every tenant. Bodies are bounded (``--max-body-bytes``, 64 KiB by default: the
largest real body, a drain URL, is far smaller): a declared length over the bound is
refused before one byte of the body is read, and a chunked body is read only up to it.
And the caller is checked first: an admin route without the admin token, a dashboard
route with an unknown secret, or an /api/v2 route without a credential of the cache that
has the api capability, is answered before its body is read or parsed (the routes check
again; this is the early, cheap refusal).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from backend.api.basic_auth import Refused, authenticate, parse
from backend.control.errors import Forbidden, NotFound
from backend.control.plane import ControlPlane
from backend.throttle import AuthThrottle

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/api/v1/admin/"
DASHBOARD_PREFIX = "/dashboard/"
API_V2_PREFIX = "/api/v2/caches/"
BODYLESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def _answer(send: Send, status: int, error: str, headers: list | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestGate:
    def __init__(
        self,
        app: ASGIApp,
        control: ControlPlane,
        admin_token: str,
        max_body: int,
        throttle: AuthThrottle,
    ) -> None:
        self.app = app
        self.control = control
        self.throttle = throttle
        self.admin_token = admin_token.encode()
        self.max_body = max_body

    def _refusal(self, scope: Scope) -> tuple[int, str, list] | None:
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            given = b""
            for name, value in scope["headers"]:
                if name == b"authorization" and value[:7].lower() == b"bearer ":
                    given = value[7:].strip()
            if not hmac.compare_digest(given, self.admin_token):
                return (
                    401,
                    "a valid admin token is required (Authorization: Bearer <token>)",
                    [(b"www-authenticate", b"Bearer")],
                )
        elif path.startswith(DASHBOARD_PREFIX):
            secret = path[len(DASHBOARD_PREFIX) :].split("/", 1)[0]
            try:
                self.control.cache_by_sso(secret)
            except NotFound as exc:
                return 404, str(exc), []
        elif path.startswith(API_V2_PREFIX):
            return self._api_v2_refusal(scope, path[len(API_V2_PREFIX) :].split("/", 1)[0])
        return None

    def _api_v2_refusal(self, scope: Scope, cache_id: str) -> tuple[int, str, list] | None:
        header = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
        client = scope.get("client")
        host = client[0] if client else ""
        try:
            authenticate(self.control, self.throttle, host, parse(header), cache_id)
        except Refused as exc:
            return (
                exc.status,
                exc.message,
                [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()],
            )
        except NotFound as exc:
            return 404, str(exc), []
        except Forbidden as exc:
            return 403, str(exc), []
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if scope["method"] in BODYLESS and length in (None, b"0") and not chunked:
            await self.app(scope, receive, send)  # nothing to read: the routes decide
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _answer(send, *refusal)
            return
        if length is not None:
            if not length.isdigit():
                await _answer(send, 400, "invalid Content-Length")
            elif int(length) > self.max_body:
                await _answer(send, 413, f"request body over {self.max_body} bytes")
            else:  # the server delivers exactly the declared length
                await self.app(scope, receive, send)
            return
        await self._read_bounded(scope, receive, send)

    async def _read_bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body of unknown length (chunked), read up to the bound, then replayed."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, f"request body over {self.max_body} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
