"""The TUI's only way to the backend: one httpx.AsyncClient, answers as the API's schemas.

Errors become ``ApiError`` with a message fit for a notification ("backend unreachable",
"dashboard URL no longer valid", the API's own ``error`` text) — never a traceback.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from backend.api.schemas import (
    AlertsOut,
    AppOut,
    AuditOut,
    CacheInfo,
    CacheOut,
    CredentialOut,
    DeleteOut,
    FlushOut,
    KeysOut,
    LogsOut,
    MigrateOut,
    PlanOut,
    RotateOut,
    StatsOut,
    StatusOut,
)
from tui.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


@cache
def _verified_tls() -> ssl.SSLContext:
    """The CA bundle, loaded once per process: parsing it takes 50-180 ms."""
    return httpx.create_ssl_context()


def tls_for(base_url: str, cafile: Path | None = None) -> ssl.SSLContext:
    """TLS settings for a backend URL: always verifying, never a fallback.

    An https backend is checked against the system's trust (httpx's CA bundle), or only
    against ``cafile`` when given (``--api-ca``: a private CA, or a self-signed
    certificate itself; a certificate of the chain is trusted as an anchor, as Python
    3.13 does by default, so the server's own certificate file works too). A plain-http
    backend never starts TLS, so it gets a context that still verifies but trusts no one,
    and start-up skips loading the CA bundle (the largest single cost of launching the
    dashboard on a local backend)."""
    if urlsplit(base_url).scheme != "https":
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED on
    if cafile is None:
        return _verified_tls()
    try:
        context = ssl.create_default_context(cafile=str(cafile))
    except ssl.SSLError as exc:  # before OSError: it is one
        raise ApiError(f"--api-ca {cafile}: no PEM certificate in it ({exc.reason})") from None
    except OSError as exc:
        raise ApiError(f"--api-ca {cafile}: {exc.strerror or exc}") from None
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """An exception and what it was raised from (httpx wraps httpcore wraps ssl)."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _transport_failure(base_url: str, exc: httpx.TransportError, pinned: bool) -> str:
    """One line for a request that never got an answer; TLS failures say what to do
    (``pinned``: a CA file was given already, so --api-ca is no news)."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            hint = (
                ""
                if pinned
                else "; for a private CA or a self-signed certificate, give it with --api-ca FILE"
            )
            return (
                f"cannot verify the certificate of the backend at {base_url}: "
                f"{cause.verify_message or cause.reason}{hint}"
            )
        if isinstance(cause, ssl.SSLError) and cause.reason == "WRONG_VERSION_NUMBER":
            return f"the backend at {base_url} does not speak TLS: try its http:// URL"
    hint = ""
    if isinstance(exc, httpx.RemoteProtocolError) and base_url.startswith("http://"):
        hint = " (if it serves HTTPS only, use its https:// URL)"
    return f"cannot reach the backend at {base_url}: {exc}{hint}"


@cache
def _list_of(model: type[BaseModel]) -> TypeAdapter:
    """One validator per list type, built on first use."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


class CachierClient:
    def __init__(
        self,
        base_url: str,
        admin_token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        cafile: Path | None = None,
        server_name: str | None = None,
    ) -> None:
        """``cafile``: trust only this CA (or certificate) for an https backend.
        ``server_name``: verify the certificate for this name instead of the URL's host
        (the in-process backend is reached on loopback, its certificate names the host
        clients are told)."""
        headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self.base_url = base_url.rstrip("/")
        self._extensions = {"sni_hostname": server_name} if server_name else {}
        self._pinned = cafile is not None
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout,
            verify=tls_for(self.base_url, cafile),
            transport=transport,
        )

    async def close(self) -> None:
        await self.http.aclose()

    # -- plumbing -----------------------------------------------------------------------
    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(method, path, extensions=self._extensions, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(f"the backend at {self.base_url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise ApiError(_transport_failure(self.base_url, exc, self._pinned)) from None
        if response.status_code >= 400:
            try:
                message = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200] or response.reason_phrase
            if response.status_code == 401:
                message = "the admin token was refused"
            raise ApiError(message, response.status_code)
        return response

    async def _request(self, model: type[Model], method: str, path: str, **kwargs: Any) -> Model:
        """Any request (GET, POST, PATCH, DELETE); the answer as ``model``, parsed straight
        from the body's bytes by pydantic-core (ten minutes of samples parse about twice as
        fast as via a dict)."""
        response = await self._send(method, path, **kwargs)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise ApiError(f"unexpected answer from {path}") from None

    async def _get_list(self, model: type[Model], path: str) -> list[Model]:
        """A GET whose answer is a JSON list of ``model``."""
        response = await self._send("GET", path)
        try:
            return _list_of(model).validate_json(response.content)
        except ValidationError:
            raise ApiError(f"unexpected answer from {path}") from None

    # -- public and operator ------------------------------------------------------------
    async def status(self) -> StatusOut:
        return await self._request(StatusOut, "GET", "/api/v1/status")

    async def plans(self) -> list[PlanOut]:
        return await self._get_list(PlanOut, "/api/v1/plans")

    async def caches(self) -> list[CacheOut]:
        return await self._get_list(CacheOut, "/api/v1/admin/caches")

    async def create_cache(self, name: str, plan: str, region: str | None) -> CacheOut:
        body = {"name": name, "plan": plan} | ({"region": region} if region else {})
        return await self._request(CacheOut, "POST", "/api/v1/admin/caches", json=body)

    # -- one cache, through its dashboard URL -------------------------------------------
    async def cache(self, sso: str) -> CacheInfo:
        return await self._request(CacheInfo, "GET", f"/dashboard/{sso}/api/cache")

    async def stats(
        self, sso: str, window_s: float | None = None, since: float | None = None
    ) -> StatsOut:
        params = ({"window": window_s} if window_s else {}) | (
            {"since": since} if since is not None else {}
        )
        return await self._request(StatsOut, "GET", f"/dashboard/{sso}/api/stats", params=params)

    async def credentials(self, sso: str) -> list[CredentialOut]:
        return await self._get_list(CredentialOut, f"/dashboard/{sso}/api/credentials")

    async def add_credential(self, sso: str) -> CredentialOut:
        return await self._request(CredentialOut, "POST", f"/dashboard/{sso}/api/credentials")

    async def set_capabilities(
        self, sso: str, username: str, **capabilities: bool
    ) -> CredentialOut:
        path = f"/dashboard/{sso}/api/credentials/{username}"
        return await self._request(CredentialOut, "PATCH", path, json=capabilities)

    async def promote(self, sso: str, username: str) -> CredentialOut:
        return await self._request(
            CredentialOut, "POST", f"/dashboard/{sso}/api/credentials/{username}/promote"
        )

    async def delete_credential(self, sso: str, username: str) -> DeleteOut:
        return await self._request(
            DeleteOut, "DELETE", f"/dashboard/{sso}/api/credentials/{username}"
        )

    async def flush(self, sso: str) -> FlushOut:
        return await self._request(FlushOut, "POST", f"/dashboard/{sso}/api/flush")

    async def migrate(self, sso: str) -> MigrateOut:
        return await self._request(MigrateOut, "POST", f"/dashboard/{sso}/api/migrate")

    async def rotate_sso(self, sso: str) -> RotateOut:
        return await self._request(RotateOut, "POST", f"/dashboard/{sso}/api/sso/rotate")

    async def logs(self, sso: str, after: int | None = None, limit: int = 200) -> LogsOut:
        params: dict[str, int] = {"limit": limit} | ({"after": after} if after is not None else {})
        return await self._request(LogsOut, "GET", f"/dashboard/{sso}/api/logs", params=params)

    async def keys(self, sso: str) -> KeysOut:
        return await self._request(KeysOut, "GET", f"/dashboard/{sso}/api/keys")

    async def alerts(self, sso: str) -> AlertsOut:
        return await self._request(AlertsOut, "GET", f"/dashboard/{sso}/api/alerts")

    async def set_alerts(self, sso: str, settings: dict[str, Any]) -> AlertsOut:
        """Replace the thresholds and webhook (``AlertsIn``: a field left out is off)."""
        path = f"/dashboard/{sso}/api/alerts"
        return await self._request(AlertsOut, "PUT", path, json=settings)

    async def audit(self, sso: str, limit: int = 100) -> AuditOut:
        params = {"limit": limit}
        return await self._request(AuditOut, "GET", f"/dashboard/{sso}/api/audit", params=params)

    async def app(self, sso: str) -> AppOut:
        return await self._request(AppOut, "GET", f"/dashboard/{sso}/api/app")
