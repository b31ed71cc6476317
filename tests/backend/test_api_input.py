"""Bad input is refused and changes nothing, on every route that changes something.

The routes come from the running app, so a new POST/PATCH/PUT route is checked without
anyone remembering to list it; a route with a body needs a valid example in VALID_BODIES
(the test says so when one is missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import count
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from backend.api.app import create_app
from backend.config import Config
from backend.topology import default_topology
from tests.backend.test_auth import pymemcache_client
from tests.conftest import CacheHandle, RunningService

MUTATING = {"POST", "PATCH", "PUT"}
_names = count(1)

# A body each route accepts: the baseline that one wrong field at a time is made from.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/admin/caches"): lambda: {"name": f"input-{next(_names)}", "plan": "free"},
    ("PATCH", "/dashboard/{sso_secret}/api/credentials/{username}"): lambda: {"write": False},
    ("PATCH", "/api/v2/caches/{cache_id}/credentials/{username}"): lambda: {"write": False},
    ("PUT", "/dashboard/{sso_secret}/api/app/log-drain"): lambda: {
        "url": "http://127.0.0.1:9/drain"
    },
    ("POST", "/api/v1/admin/proxies/{hostname}/fault"): lambda: {"mode": "slow", "delay_ms": 1},
    ("PUT", "/dashboard/{sso_secret}/api/alerts"): lambda: {
        "memory_above": 90,
        "connections_above": 100,
        "webhook_url": "http://127.0.0.1:9/hook",
    },
}

# One value of every JSON type; a field gets each one its schema does not allow.
SAMPLES: dict[str, Any] = {
    "string": "true",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "array": [1],
    "object": {"a": 1},
    "null": None,
}


def mutating_routes() -> list[str]:
    """``METHOD /path`` of every route that changes state, read from the app itself.

    The app is built (not started) at collection time and its OpenAPI document, the
    API's contract, lists the routes, so the parameters of the test below follow the code:
    a new route is tested the day it is added.
    """
    unused: Any = None  # the parts are only reached when a request runs
    topology_only: Any = SimpleNamespace(topology=default_topology())  # documents the regions
    app = create_app(
        unused, unused, topology_only, unused, unused, "unused", Config().max_body_bytes
    )
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in MUTATING
    )


def _allowed_types(schema: dict) -> set[str]:
    if "anyOf" in schema:
        return set().union(*(_allowed_types(s) for s in schema["anyOf"]))
    if "enum" in schema or "const" in schema:
        return {"string"}
    kind = schema.get("type")
    allowed = {kind} if kind else set(SAMPLES)
    if "number" in allowed:
        allowed.add("integer")
    return allowed


def body_schema(openapi: dict, method: str, path: str) -> dict | None:
    """The route's request body schema, or None when it takes no parameters."""
    body = openapi["paths"][path][method.lower()].get("requestBody")
    assert body is not None, f"{method} {path} declares no body: a sent body goes unchecked"
    schema = body["content"]["application/json"]["schema"]
    if "anyOf" in schema:  # NoBody | None
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    name = schema["$ref"].rsplit("/", 1)[1]
    model = openapi["components"]["schemas"][name]
    return model if model.get("properties") else None


def refused_bodies(schema: dict | None, valid: dict | None) -> list[tuple[str, bytes]]:
    """(what is wrong, raw body): malformed JSON, a non-object, an unknown field and,
    for each documented field, every JSON type it does not allow."""
    base = valid or {}
    bodies = [
        ("malformed JSON", b"{nope"),
        ("truncated JSON", b'{"write": tr'),
        ("an array", b"[]"),
        ("a string", b'"flush"'),
        ("a number", b"42"),
        ("an unknown field", json.dumps(base | {"colour": "red"}).encode()),
    ]
    for field, field_schema in (schema or {}).get("properties", {}).items():
        allowed = _allowed_types(field_schema)
        for kind, value in SAMPLES.items():
            if kind not in allowed:
                bodies.append((f"{field} as {kind}", json.dumps(base | {field: value}).encode()))
    return bodies


class World:
    """What the API shows of the state every mutating route could change."""

    def __init__(self, service: RunningService, cache: CacheHandle, secondary: str) -> None:
        self.service, self.cache, self.secondary = service, cache, secondary
        self.sso = cache.info["dashboard_url"].rsplit("/", 1)[1]
        self.proxy = next(iter(service.listening.proxies))
        self.admin = service.admin()

    def path(self, template: str) -> str:
        values = {
            "sso_secret": self.sso,
            "username": self.secondary,
            "cache_id": self.cache.info["id"],
            "hostname": self.proxy,
        }
        try:
            return template.format(**values)
        except KeyError as missing:
            raise AssertionError(f"{template}: give the test a value for {missing}") from None

    def snapshot(self) -> dict:
        admin, dashboard = self.admin, f"/dashboard/{self.sso}/api"
        caches = admin.get("/api/v1/admin/caches", params={"limit": 1000}).json()["items"]
        regions = admin.get("/api/v1/status").json()["regions"]
        return {
            "caches": [
                {k: c[k] for k in ("id", "name", "cluster", "dashboard_url", "credentials")}
                | {"items": c["usage"]["items"]}
                for c in caches
            ],
            "cache": admin.get(dashboard + "/cache").json(),
            "app": admin.get(dashboard + "/app").json(),
            "logs": admin.get(dashboard + "/logs", params={"limit": 1}).json(),
            "faults": [
                (p["hostname"], p["fault"], p["delay_ms"])
                for r in regions
                for c in r["clusters"]
                for p in c["proxies"]
            ],
        }


@pytest.fixture
def world(service: RunningService, cache: CacheHandle) -> Iterator[World]:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        secondary = api.post("/credentials")
    assert secondary.status_code == 201
    client = pymemcache_client(cache)  # an item, so that a flush would show
    client.set("kept", "value", noreply=False)
    client.close()
    world = World(service, cache, secondary.json()["username"])
    yield world
    world.admin.close()


def test_the_mutating_routes_are_found() -> None:
    """The parametrized test below runs on this list: it must not come out empty."""
    routes = mutating_routes()
    assert "POST /dashboard/{sso_secret}/api/credentials" in routes
    assert "PUT /dashboard/{sso_secret}/api/app/log-drain" in routes
    assert len(routes) >= 10


@pytest.mark.parametrize("route", mutating_routes())
def test_bad_input_is_refused_and_changes_nothing(
    service: RunningService, world: World, route: str
) -> None:
    method, template = route.split(" ", 1)
    openapi = httpx.get(service.api_url + "/openapi.json").json()
    schema = body_schema(openapi, method, template)
    make_valid = VALID_BODIES.get((method, template))
    assert (schema is None) == (make_valid is None), f"{route}: add a valid body to VALID_BODIES"
    valid = make_valid() if make_valid else None
    url = service.api_url + world.path(template)
    headers = {"Authorization": "Bearer test-admin-token", "content-type": "application/json"}
    # /api/v2 is called with a credential of the cache (its primary has the api capability)
    auth = (world.cache.username, world.cache.password) if template.startswith("/api/v2/") else None
    before = world.snapshot()
    with httpx.Client(timeout=10, headers=headers, auth=auth) as http:
        for what, body in refused_bodies(schema, valid):
            response = http.request(method, url, content=body)
            assert response.status_code == 422, (what, body, response.text)
            assert response.json()["error"], what
            assert world.snapshot() == before, f"{route} with {what} changed something"
        # The control: the same route with a good request does act (so the snapshot sees
        # changes), and a body-less action still works with no body at all.
        kwargs = {"json": valid} if valid is not None else {}
        accepted = http.request(method, url, **kwargs)
        assert accepted.is_success, accepted.text
        assert world.snapshot() != before, f"{route}: the snapshot cannot see its change"
        if template.endswith("/fault"):
            http.post(url, json={"mode": "none"})


def test_an_action_without_parameters_accepts_an_empty_object(cache: CacheHandle) -> None:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        added = api.post("/credentials", json={})
        listed = api.get("/credentials").json()
    assert added.status_code == 201
    assert len(listed) == 2
