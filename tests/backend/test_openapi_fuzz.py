"""Schemathesis over the running service's own ``/openapi.json``, with every check.

The OpenAPI document is the API's contract (the TUI and scripts are written against it),
so a generated request must get an answer the document describes: never a 500, a status
code, content type, headers and body the route documents, 405 with ``Allow`` for a method
it does not have, bad input refused and good input accepted.

Deterministic and bounded so it can run in CI: a fixed seed, derandomized generation and
a fixed number of examples per operation. Schemathesis draws path parameters at random, so
it would only ever see the 404 of an unknown cache; the test swaps most of them for real
ones (a cache's dashboard secret, its id, its credentials' usernames, a proxy's hostname)
and keeps the rest random, so both the real routes and their 404s are exercised.

Log drains and alert webhooks: the backend POSTs to the URL a cache owner sets. A generated
URL naming a literal public address (``http://8.8.8.8/``) passes every check at PUT time
(with ``allow_internal_drains`` or without) and the drain worker would then contact it. So
every drain URL the API would accept (one matching its documented pattern) is replaced by
a loopback one on a closed port before it is sent; the others are sent as generated and
refused (422) before anything resolves their host. The backend never reaches beyond
127.0.0.1, not even for a DNS lookup of a drain.

``/api/v2`` is called as a deploy script would, with the cache's current primary
credential (HTTP Basic; a primary always has the api capability), not the admin token.

Fault injection, ``sso/rotate`` and credential deletion run for real; ``settle`` undoes
what would break the calls that follow (a fault left on, a rotated secret, too few
credentials). Seed and example count are below; a run is about 800 calls.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.auths import apply_basic_auth
from schemathesis.core.parameters import ParameterLocation

from backend.control.models import DRAIN_URL_PATTERN
from tests.conftest import ADMIN_TOKEN, RunningService, default_trust, free_port, make_config

SEED = 12
EXAMPLES_PER_OPERATION = 25


class World:
    """Real values for path parameters, kept current as the fuzzed calls change them."""

    def __init__(self, service: RunningService) -> None:
        self.service = service
        # One connection for the harness's own calls (thousands in a run): a client per
        # call cost a CA bundle parse and a new connection each.
        self.http = service.admin()
        self.owner = httpx.Client(base_url=service.api_url, timeout=10, verify=default_trust())
        self.generation = 0
        self.cache_id, self.secret = "", ""
        self.new_cache()
        self.drain = f"http://127.0.0.1:{free_port()}/drain"  # nothing listens there
        status = self.http.get("/api/v1/status").json()
        self.hostnames = [
            p["hostname"] for r in status["regions"] for c in r["clusters"] for p in c["proxies"]
        ]
        # (operation, phase, status) of every call, to show what the run really reached.
        self.calls: Counter[tuple[str, str, int]] = Counter()
        self.turns: Counter[str] = Counter()

    def new_cache(self) -> None:
        """The cache the real path parameters name (again, after a fuzzed call deleted it)."""
        self.generation += 1
        info = self.service.create_cache(f"fuzz-target-{self.generation}", plan="100mb")
        self.cache_id = info["id"]
        self.secret = info["dashboard_url"].rstrip("/").rsplit("/", 1)[-1]

    def cursor(self) -> str:
        """A cursor the admin list handed out (after its first cache; a second one is
        created if the list has only one)."""
        page = self.http.get("/api/v1/admin/caches", params={"limit": 1}).json()
        if page["next_cursor"] is None:
            self.service.create_cache(f"fuzz-cursor-{self.generation}", plan="free")
            return self.cursor()
        return page["next_cursor"]

    def usernames(self) -> list[str]:
        info = self.http.get(f"/api/v1/admin/caches/{self.cache_id}").json()
        return [c["username"] for c in info["credentials"]]

    def primary(self) -> tuple[str, str]:
        """The cache's primary now (fuzzed calls promote and delete): /api/v2's caller."""
        info = self.http.get(f"/api/v1/admin/caches/{self.cache_id}").json()
        primary = next(c for c in info["credentials"] if c["primary"])
        return primary["username"], primary["password"]


def _drain_is_contactable(url: Any) -> bool:
    """Whether ``url`` could get past the API's checks, so the drain worker would POST to
    it: it matches the documented pattern, or (belt and braces, should the pattern and the
    route ever disagree) it splits into an http(s) URL with a host."""
    if not isinstance(url, str):
        return False
    if re.search(DRAIN_URL_PATTERN, url):
        return True
    try:
        parts = urlsplit(url)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def aim(case: Case, world: World) -> None:
    """Point ``case`` at real resources (two calls in three of each operation; the third
    keeps the drawn values, for the 404s) and keep drains on loopback (always)."""
    world.turns[case.operation.label] += 1
    params = case.path_parameters or {}
    if params and world.turns[case.operation.label] % 3:
        if "sso_secret" in params:
            params["sso_secret"] = world.secret
        if "cache_id" in params:
            params["cache_id"] = world.cache_id
        if "hostname" in params:
            params["hostname"] = world.hostnames[_pick(params["hostname"], world.hostnames)]
        if "username" in params:
            names = world.usernames()
            params["username"] = names[_pick(params["username"], names)]
    query = case.query or {}
    listing = case.operation.path == "/api/v1/admin/caches" and case.method == "GET"
    if listing and "cursor" in query and _query_is_valid(case):
        # A cursor is opaque: one the list did not hand out is refused (422) whatever it
        # looks like, so a schema-valid request passes one it did.
        query["cursor"] = world.cursor()
    if case.operation.path.startswith("/api/v2/") and "Authorization" in (case.headers or {}):
        # generated credentials become real ones; a case without the header (testing that
        # it is required) goes as it is
        apply_basic_auth(case, *world.primary())
    body = case.body
    drain = case.operation.path.endswith("/app/log-drain") and isinstance(body, dict)
    if drain and _drain_is_contactable(body.get("url")):
        body["url"] = world.drain
    hook = case.operation.path.endswith("/api/alerts") and isinstance(body, dict)
    if hook and _drain_is_contactable(body.get("webhook_url")):  # an alert webhook: the same
        body["webhook_url"] = world.drain


def _query_is_valid(case: Case) -> bool:
    """Whether the case's query was drawn to fit the schema (positive), not to break it."""
    if case.meta is None:
        return True
    component = case.meta.components.get(ParameterLocation.QUERY)
    return component is None or component.mode == GenerationMode.POSITIVE


def _pick(drawn: Any, choices: list[str]) -> int:
    """A real value chosen by the drawn one, so the seeded run stays reproducible."""
    return zlib.crc32(repr(drawn).encode()) % len(choices)


def settle(case: Case, response: Any, world: World) -> None:
    """Undo what would break the following operations: a fault left on a proxy, a dashboard
    secret rotated away, credentials all deleted but the primary, the cache deleted."""
    path = case.operation.path
    if path.endswith("/fault") and response.status_code == 200:
        world.http.post(
            f"/api/v1/admin/proxies/{case.path_parameters['hostname']}/fault",
            json={"mode": "none"},
        )
    if path.endswith("/sso/rotate") and response.status_code == 200:
        world.secret = response.json()["dashboard_url"].rstrip("/").rsplit("/", 1)[-1]
    gone = path == "/api/v1/admin/caches/{cache_id}" and case.method == "DELETE"
    if gone and response.status_code == 204:
        world.new_cache()
        return
    deleted = path.endswith("/credentials/{username}") and case.method == "DELETE"
    if deleted and len(world.usernames()) < 3:
        world.owner.post(f"/dashboard/{world.secret}/api/credentials")


@pytest.fixture(scope="module")
def fuzzed_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    running = RunningService(make_config(tmp_path_factory.mktemp("fuzz"))).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def world(fuzzed_service: RunningService) -> Iterator[World]:
    world = World(fuzzed_service)
    yield world
    world.http.close()
    world.owner.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed_service: RunningService) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                "deterministic": True,
                "database": "none",
            },
            "checks": {"enabled": True},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(f"{fuzzed_service.api_url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_answers_as_its_schema_says(case: Case, world: World) -> None:
    aim(case, world)
    response = case.call_and_validate()
    phase = case.meta.phase.name.value if case.meta is not None else "explicit"
    world.calls[(case.operation.label, phase, response.status_code)] += 1
    settle(case, response, world)


def test_the_run_reached_every_operation_past_its_404(world: World) -> None:
    """Guards the harness, not the API: every operation was called, and every dashboard and
    admin route with an id was answered both past the 404 (a real secret, id, username,
    hostname) and with it (a random one). Run with -s for the counts."""
    if not world.calls:
        pytest.skip("counts the calls of test_api_answers_as_its_schema_says; run both")
    by_operation: dict[str, set[int]] = {}
    for (operation, phase, status), n in sorted(world.calls.items()):
        print(f"{operation:70} {phase:9} {status} x{n}")
        by_operation.setdefault(operation, set()).add(status)
    print(f"{sum(world.calls.values())} calls over {len(by_operation)} operations")
    assert len(by_operation) >= 22, sorted(by_operation)
    for operation, statuses in by_operation.items():
        if "{" in operation:
            assert statuses - {404, 422}, f"{operation} never got past its 404: {statuses}"
            assert 404 in statuses, f"{operation} was never called with an unknown id"
