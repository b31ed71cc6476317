"""/api/v2: a cache managed with its own credentials over HTTP Basic auth (issue 16 item 6).

A real service, httpx against its API, pymemcache against its memcache endpoint.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import httpx
import pytest
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from backend.control.audit import DASHBOARD
from backend.control.db import Database
from backend.control.sql import MIGRATIONS, SQLITE, migration_statements
from tests.backend.test_auth import pymemcache_client
from tests.backend.test_processes import (  # the two-process fixture, on PostgreSQL
    WITHIN_S,
    cache_on_b,
    pair,  # noqa: F401 (a fixture)
    until,
)
from tests.conftest import CacheHandle, RunningService, http, make_config


def v2(service: RunningService, cache: CacheHandle, user: str, password: str) -> httpx.Client:
    base = f"{service.api_url}/api/v2/caches/{cache.info['id']}"
    return httpx.Client(base_url=base, auth=(user, password), timeout=10)


def primary_v2(service: RunningService, cache: CacheHandle) -> httpx.Client:
    return v2(service, cache, cache.username, cache.password)


def dashboard(cache: CacheHandle) -> httpx.Client:
    return httpx.Client(base_url=cache.dashboard_api, timeout=10)


def memcache_works(cache: CacheHandle, username: str, password: str) -> bool:
    client = pymemcache_client(cache, username, password)
    try:
        return client.set("probe", "1", noreply=False) is True
    except (MemcacheUnexpectedCloseError, ConnectionError, OSError, Exception):
        return False
    finally:
        client.close()


def test_rotation_entirely_through_api_v2(service: RunningService, cache: CacheHandle) -> None:
    """Add a credential, promote it, switch to it, delete the old primary: no dashboard."""
    old_user, old_password = cache.username, cache.password
    with primary_v2(service, cache) as api:
        added = api.post("/credentials")
        assert added.status_code == 201, added.text
        new = added.json()
        assert (new["primary"], new["write"], new["flush"], new["api"]) == (
            False,
            True,
            True,
            False,
        )
        promoted = api.post(f"/credentials/{new['username']}/promote")
        assert promoted.status_code == 200, promoted.text
        assert promoted.json()["primary"] and promoted.json()["api"]  # a primary has api
        listed = {c["username"]: c for c in api.get("/credentials").json()}
        assert listed[old_user]["api"] and not listed[old_user]["primary"]  # keeps its own
    # the deploy script now holds the new primary and removes the old one with it
    with v2(service, cache, new["username"], new["password"]) as api:
        deleted = api.delete(f"/credentials/{old_user}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["username"] == old_user
        remaining = api.get("/credentials").json()
        assert [c["username"] for c in remaining] == [new["username"]]
        trail = api.get("/audit").json()["entries"]
    assert memcache_works(cache, new["username"], new["password"])
    assert not memcache_works(cache, old_user, old_password)
    with v2(service, cache, old_user, old_password) as gone:
        assert gone.get("/info").status_code == 401
    actors = [(e["actor"], e["action"]) for e in reversed(trail)][-3:]
    assert actors == [
        (f"credential {old_user} (API)", "credential added"),
        (f"credential {old_user} (API)", "primary promoted"),
        (f"credential {new['username']} (API)", "credential deleted"),
    ]


def test_info_stats_flush_and_audit_answer_as_the_dashboard_does(
    service: RunningService, cache: CacheHandle
) -> None:
    client = pymemcache_client(cache)
    client.set("kept", "value", noreply=False)
    with primary_v2(service, cache) as api, dashboard(cache) as owner:
        info = api.get("/info").json()
        expected = owner.get("/cache").json()
        assert info == expected | {"dashboard_url": ""}  # the URL grants more than the api
        assert api.get("/stats").status_code == 200
        assert api.get("/stats", params={"window": 0}).status_code == 422  # as the dashboard
        flushed = api.post("/flush")
        assert flushed.status_code == 200
        assert flushed.json()["origin"] == "web interface"
        assert client.get("kept") is None
        client.close()
        assert api.get("/audit").json() == owner.get("/audit").json()
        assert api.get("/audit", params={"limit": 0}).status_code == 422
        unknown = api.delete("/credentials/nobody")
        assert unknown.status_code == 404 and "nobody" in unknown.json()["error"]
        primary = api.delete(f"/credentials/{cache.username}")
        assert primary.status_code == 409  # the primary cannot be deleted, as on the dashboard


def test_a_credential_without_api_is_refused_with_403(
    service: RunningService, cache: CacheHandle
) -> None:
    with dashboard(cache) as owner:
        added = owner.post("/credentials").json()
    assert added["api"] is False  # off by default for new credentials
    with v2(service, cache, added["username"], added["password"]) as api:
        refused = api.get("/info")
        assert refused.status_code == 403
        assert "api capability" in refused.json()["error"]
        assert api.post("/flush").status_code == 403  # the gate's path refuses the same
        assert api.patch(f"/credentials/{added['username']}", json={"api": True}).status_code == 403


def test_api_switched_off_live_refuses_the_next_request(
    service: RunningService, cache: CacheHandle
) -> None:
    with dashboard(cache) as owner:
        added = owner.post("/credentials").json()
        switched = owner.patch(f"/credentials/{added['username']}", json={"api": True})
        assert switched.status_code == 200 and switched.json()["api"] is True
        # one keep-alive connection, authenticated before the switch-off and after it
        with v2(service, cache, added["username"], added["password"]) as api:
            assert api.get("/info").status_code == 200
            off = owner.patch(f"/credentials/{added['username']}", json={"api": False})
            assert off.json()["api"] is False
            assert api.get("/info").status_code == 403
            assert api.post("/credentials", json={}).status_code == 403
    assert memcache_works(cache, added["username"], added["password"])  # memcache unchanged


def test_the_primary_always_has_api(service: RunningService, cache: CacheHandle) -> None:
    with dashboard(cache) as owner:
        refused = owner.patch(f"/credentials/{cache.username}", json={"api": False})
        assert refused.status_code == 409
        assert "primary" in refused.json()["error"]
        assert owner.get("/credentials").json()[0]["api"] is True
    with primary_v2(service, cache) as api:
        assert api.patch(f"/credentials/{cache.username}", json={"api": False}).status_code == 409
        assert api.get("/info").status_code == 200


def test_another_caches_credential_gets_404_like_an_unknown_cache(
    service: RunningService, cache: CacheHandle
) -> None:
    other = CacheHandle(service.create_cache("v2-stranger"))
    with v2(service, cache, other.username, other.password) as stranger:
        foreign = stranger.get("/info")
        assert foreign.status_code == 404
        assert stranger.post("/flush").status_code == 404  # the gate's path too
    base = f"{service.api_url}/api/v2/caches/c0000000000"
    with httpx.Client(base_url=base, auth=(other.username, other.password)) as nowhere:
        unknown = nowhere.get("/info")
    assert unknown.status_code == 404
    assert foreign.json()["error"].replace(cache.info["id"], "X") == unknown.json()[
        "error"
    ].replace("c0000000000", "X")


@pytest.mark.parametrize("method", ["GET", "POST"])  # POST: refused by the gate, before a body
def test_wrong_password_unknown_user_and_no_credentials_get_401(
    service: RunningService, cache: CacheHandle, method: str
) -> None:
    url = f"{service.api_url}/api/v2/caches/{cache.info['id']}/" + (
        "info" if method == "GET" else "flush"
    )
    for auth in [(cache.username, "wrong"), ("NOSUCHUSER", cache.password), None]:
        response = httpx.request(method, url, auth=auth, json={} if method == "POST" else None)
        assert response.status_code == 401, (auth, response.text)
        assert response.headers["www-authenticate"].startswith("Basic")
        assert response.json()["error"]
    garbled = http.get(url.replace("/flush", "/info"), headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401


@pytest.fixture
def strict(tmp_path) -> Iterator[RunningService]:
    """A service whose throttle refuses after 3 failures from one address."""
    running = RunningService(make_config(tmp_path, auth_failure_limit=3)).start()
    yield running
    running.stop()


def test_failures_are_throttled_with_the_memcache_throttle(strict: RunningService) -> None:
    cache = CacheHandle(strict.create_cache("v2-throttled"))
    with v2(strict, cache, cache.username, "guess") as guesser:
        assert [guesser.get("/info").status_code for _ in range(3)] == [401, 401, 401]
        throttled = guesser.get("/info")
        assert throttled.status_code == 429
        assert 1 <= int(throttled.headers["retry-after"]) <= 60
        assert guesser.post("/flush", json={}).status_code == 429  # the gate counts too
    # the right password from this address, for another username, is not checked either
    with v2(strict, cache, "SOMEONE", "x") as other:
        assert other.get("/info").status_code == 429
    # one count for both doors: memcache authentication from this address is refused too,
    # even with the right password (checked only once the window has room again)
    assert not memcache_works(cache, cache.username, cache.password)
    metrics = http.get(f"{strict.api_url}/metrics").text
    assert "cachier_auth_throttled_total" in metrics


def test_the_owner_switches_api_on_through_the_dashboard_and_it_is_audited(
    service: RunningService, cache: CacheHandle
) -> None:
    with dashboard(cache) as owner:
        added = owner.post("/credentials").json()
        owner.patch(f"/credentials/{added['username']}", json={"api": True})
        entry = owner.get("/audit").json()["entries"][0]
    assert (entry["actor"], entry["action"]) == (DASHBOARD, "capabilities changed")
    assert entry["detail"] == f"{added['username']}: write on, flush on, api on"


def test_openapi_documents_http_basic(service: RunningService) -> None:
    document = http.get(f"{service.api_url}/openapi.json").json()
    assert document["components"]["securitySchemes"]["HTTPBasic"]["scheme"] == "basic"
    info = document["paths"]["/api/v2/caches/{cache_id}/info"]["get"]
    assert info["security"] == [{"HTTPBasic": []}]
    assert {"401", "403", "404", "429"} <= set(info["responses"])


def test_api_switched_on_and_off_through_a_is_followed_by_b(pair) -> None:  # noqa: F811
    """Two processes on PostgreSQL: B re-reads the can_api column A changed (follow.py)."""
    a, b, _ = pair
    cache = cache_on_b(a)
    owner = a.dashboard(cache["dashboard_url"])
    added = http.post(owner + "/credentials", timeout=10).json()
    user, password = added["username"], added["password"]
    on_b = f"{b.api_url}/api/v2/caches/{cache['id']}/info"

    def status_on_b() -> int:
        return http.get(on_b, auth=(user, password), timeout=10).status_code

    until(lambda: status_on_b() == 403, WITHIN_S, "B knows the credential, without api")
    switched = http.patch(f"{owner}/credentials/{user}", json={"api": True}, timeout=10)
    assert switched.status_code == 200, switched.text
    until(lambda: status_on_b() == 200, WITHIN_S, "B lets it in once A switched api on")
    http.patch(f"{owner}/credentials/{user}", json={"api": False}, timeout=10)
    until(lambda: status_on_b() == 403, WITHIN_S, "B refuses it once A switched api off")


def test_the_migration_gives_existing_primaries_api_and_secondaries_not(tmp_path) -> None:
    """A database written before the column: its primaries may call /api/v2 at once."""
    path = tmp_path / "old.sqlite3"
    before = next(n for n, script in enumerate(MIGRATIONS) if "can_api" in script)
    with sqlite3.connect(path) as old:
        for number in range(before):
            for statement in migration_statements(number, SQLITE):
                old.execute(statement)
        old.execute(f"PRAGMA user_version={before}")
        old.execute("INSERT INTO caches VALUES ('c1', 'old', 'free', 'r', 'k', 'n', 'h', '2026')")
        for username, primary in (("PRIMARY", 1), ("SECONDARY", 0)):
            old.execute(
                "INSERT INTO credentials VALUES (?, 'c1', x'00', ?, 1, 1, '2026')",
                (username, primary),
            )
    db = Database(path)
    try:
        rows = {row.username: row for row in db.credentials()}
    finally:
        db.close()
    assert rows["PRIMARY"].can_api is True
    assert rows["SECONDARY"].can_api is False
