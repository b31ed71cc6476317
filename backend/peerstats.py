"""Any process's API serves any cache's statistics: it asks the owner (issue 14 item 6).

Only the process that serves a cache's cluster samples it (``backend.analytics``): the
counters live in its engines. When another process's API is asked for that cache's
``/dashboard/{secret}/api/stats``, it asks the owner's API for the very same URL, at the
``api_url`` the owner recorded in ``cluster_owners``, and passes the answer on unchanged
(the same JSON). The dashboard secret is the credential: every process of the service
computes and accepts it (one key file, one database), so nothing else is shared or
stored. The process asked answers from its own series and never asks further
(``FORWARDED``): two processes whose records disagree for a moment (a migration in
flight) cannot send a request round in circles.

Why asking and not rows in PostgreSQL: copying every cache's samples into the database
would cost every owner one row per cache per second (1 000 caches: 1 000 inserts a
second, and 86 million rows a day before rollups), for a page looked at rarely. Asking
costs nothing until someone looks, and then one HTTP request between processes.

Runs on the control thread, with one connection pool (``httpx.AsyncClient``) made on
first use and closed at stop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
from starlette.requests import Request

from backend.control.errors import NotFound, Unavailable
from backend.control.models import Cache
from backend.dataplane import DataPlane

log = logging.getLogger(__name__)

FORWARDED = "x-cachier-forwarded"  # set on a request one process makes of another
TIMEOUT_S = 2.0


class PeerStats:
    """Where a cache's statistics are kept, and asking for them there."""

    def __init__(
        self, dataplane: DataPlane, owner_api: Callable[[str], str | None], process_id: str
    ) -> None:
        self.dataplane = dataplane
        self.owner_api = owner_api  # cluster -> API URL of the other process serving it
        self.process_id = process_id
        self._client: httpx.AsyncClient | None = None
        self.asked = 0  # requests made of other processes (tests, logs)

    async def ask(self, request: Request, cache: Cache) -> dict[str, Any] | None:
        """The owner's answer to this very request; None when this process answers (it
        serves the cache, was itself asked by another process, or knows no owner)."""
        if FORWARDED in request.headers or self.dataplane.serves(cache.cluster):
            return None
        api_url = self.owner_api(cache.cluster)
        if not api_url:
            return None
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_S)
        self.asked += 1
        headers = {FORWARDED: self.process_id}
        if "authorization" in request.headers:  # /api/v2: the owner checks the credential
            headers["Authorization"] = request.headers["authorization"]
        try:
            response = await self._client.get(
                api_url + request.url.path, params=request.query_params, headers=headers
            )
        except httpx.HTTPError as exc:
            # Never the URL in a log line: its path is the cache's dashboard secret.
            log.warning(
                "cannot ask the process serving cluster %s for statistics: %s",
                cache.cluster,
                type(exc).__name__,
            )
            raise Unavailable(
                f"this cache's statistics are kept by the process serving cluster "
                f"{cache.cluster}, which does not answer; try again shortly"
            ) from None
        if response.status_code == 404:
            raise NotFound("no cache has this dashboard URL")  # rotated meanwhile
        if response.status_code != 200:
            raise Unavailable(
                f"the process serving cluster {cache.cluster} answered "
                f"{response.status_code}; try again shortly"
            )
        answer: dict[str, Any] = response.json()
        return answer

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
