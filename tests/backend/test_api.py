"""The admin and dashboard HTTP API through httpx against a running service."""

from __future__ import annotations

import os
import sqlite3
import stat

import httpx
import pytest

from tests.backend.test_auth import pymemcache_client
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config


def test_healthz_is_public(service: RunningService) -> None:
    assert httpx.get(service.api_url + "/healthz").json() == {"status": "ok"}


def test_plans_are_public_in_order_with_their_memory_limits(service: RunningService) -> None:
    """The dashboard's create-cache dialog offers these; no token needed, like a price list."""
    plans = httpx.get(service.api_url + "/api/v1/plans").json()
    names = [plan["name"] for plan in plans]
    assert names == ["free", "100mb", "250mb", "500mb", "1gb", "2.5gb", "5gb"]
    limits = [plan["memory_limit"] for plan in plans]
    assert limits == sorted(limits) and plans[1]["memory_limit"] == 100 * 1024 * 1024
    with service.admin() as admin:  # every plan listed is one a cache can be created on
        created = admin.post("/api/v1/admin/caches", json={"name": "p", "plan": names[-1]})
    assert created.status_code == 201 and created.json()["memory_limit"] == limits[-1]


def test_openapi_describes_the_admin_routes(service: RunningService) -> None:
    paths = httpx.get(service.api_url + "/openapi.json").json()["paths"]
    assert {"/api/v1/admin/caches", "/api/v1/admin/caches/{cache_id}"} <= set(paths)


def test_created_cache_has_every_documented_field(service: RunningService) -> None:
    with service.admin() as admin:
        created = admin.post("/api/v1/admin/caches", json={"name": "shop", "plan": "250mb"})
    assert created.status_code == 201
    body = created.json()
    assert {
        "id",
        "name",
        "plan",
        "region",
        "cluster",
        "servers",
        "dashboard_url",
        "credentials",
    } <= set(body)
    assert (body["name"], body["plan"], body["region"]) == ("shop", "250mb", "local")
    assert body["cluster"] in ("local-a", "local-b")
    assert body["servers"] == service.listening.endpoints["local"]
    assert body["dashboard_url"].startswith(service.api_url + "/dashboard/")
    (credential,) = body["credentials"]
    assert credential["primary"] and credential["write"] and credential["flush"]
    assert len(credential["password"]) >= 32  # 128 bits as hex


def test_list_and_get_return_the_same_cache(service: RunningService, cache: CacheHandle) -> None:
    with service.admin() as admin:
        listed = admin.get("/api/v1/admin/caches").json()
        one = admin.get(f"/api/v1/admin/caches/{cache.info['id']}").json()
    assert cache.info in listed
    assert one == cache.info


def test_new_caches_go_to_the_least_loaded_cluster(service: RunningService) -> None:
    with service.admin() as admin:
        clusters = [
            admin.post("/api/v1/admin/caches", json={"name": f"spread-{i}", "plan": "5gb"}).json()[
                "cluster"
            ]
            for i in range(2)
        ]
    assert sorted(clusters) == ["local-a", "local-b"]


def test_admin_routes_need_the_token(service: RunningService) -> None:
    url = service.api_url + "/api/v1/admin/caches"
    missing = httpx.get(url)
    wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
    assert missing.status_code == wrong.status_code == 401
    assert "admin token" in missing.json()["error"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "x", "plan": "7gb"}, 422, "plan: Input should be 'free'"),
        ({"name": "x", "plan": "free", "region": "mars"}, 422, "unknown region"),
        ({"name": "bad name!", "plan": "free"}, 422, "name must be"),
        ({"plan": "free"}, 422, "name"),
        ({"name": "x", "plan": "free", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_create_requests_get_json_errors(
    service: RunningService, body: dict, status: int, fragment: str
) -> None:
    with service.admin() as admin:
        response = admin.post("/api/v1/admin/caches", json=body)
    assert response.status_code == status
    assert fragment in response.json()["error"]


def test_malformed_json_is_a_422(service: RunningService) -> None:
    with service.admin() as admin:
        response = admin.post(
            "/api/v1/admin/caches",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422
    assert "error" in response.json()


def test_duplicate_name_is_a_conflict(service: RunningService) -> None:
    service.create_cache("unique-name")
    with service.admin() as admin:
        response = admin.post("/api/v1/admin/caches", json={"name": "unique-name", "plan": "free"})
    assert response.status_code == 409
    assert "already exists" in response.json()["error"]


def test_unknown_cache_is_a_404(service: RunningService) -> None:
    with service.admin() as admin:
        response = admin.get("/api/v1/admin/caches/nope")
    assert response.status_code == 404
    assert "no cache" in response.json()["error"]


def test_unknown_dashboard_secret_is_a_404(service: RunningService) -> None:
    response = httpx.get(service.api_url + "/dashboard/not-a-secret/api/credentials")
    assert response.status_code == 404


def test_dashboard_lists_and_adds_credentials(cache: CacheHandle) -> None:
    with httpx.Client(base_url=cache.dashboard_api) as api:
        added = api.post("/credentials").json()
        listed = api.get("/credentials").json()
        missing = api.patch("/credentials/NOPE", json={"write": False})
        invalid = api.patch(f"/credentials/{added['username']}", json={"write": "maybe"})
    assert [c["username"] for c in listed] == [cache.username, added["username"]]
    assert not added["primary"] and added["write"] and added["flush"]
    assert missing.status_code == 404
    assert invalid.status_code == 422


def flush_events(service: RunningService, cache: CacheHandle) -> list:
    db = sqlite3.connect(service.config.data_dir / "cachier.sqlite3")
    try:
        return db.execute(
            "SELECT origin, proxy FROM app_logs WHERE cache_id = ? AND origin IS NOT NULL",
            (cache.info["id"],),
        ).fetchall()
    finally:
        db.close()


def test_every_flush_is_recorded_with_proxy_and_origin(
    service: RunningService, cache: CacheHandle
) -> None:
    wire = Wire.authenticated(cache)
    wire.ask(b"flush_all\r\n")
    with service.admin() as admin:
        flushed = admin.post(f"/api/v1/admin/caches/{cache.info['id']}/flush").json()
    events = flush_events(service, cache)
    assert [origin for origin, _ in events] == ["memcache client", "admin operation"]
    assert all(
        proxy.endswith(f".{cache.info['cluster']}.local.cachier.internal") for _, proxy in events
    )
    assert flushed["origin"] == "admin operation"


def test_restart_keeps_caches_credentials_and_after_a_clean_stop_items(tmp_path) -> None:
    """A clean stop saves the items (warm restart); tests/backend/test_warm_restart.py
    covers an unclean one, which keeps none."""
    first = RunningService(make_config(tmp_path)).start()
    cache = CacheHandle(first.create_cache("durable"))
    with httpx.Client(base_url=cache.dashboard_api) as api:
        extra = api.post("/credentials").json()
        api.patch(f"/credentials/{extra['username']}", json={"write": False})
    client = pymemcache_client(cache)
    client.set("item", "volatile", noreply=False)
    client.close()
    first.stop()

    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    raw = (tmp_path / "cachier.sqlite3").read_bytes()
    assert cache.password.encode() not in raw and extra["password"].encode() not in raw

    second = RunningService(make_config(tmp_path)).start()
    try:
        with second.admin() as admin:
            again = admin.get(f"/api/v1/admin/caches/{cache.info['id']}").json()
        assert again["credentials"][0] == cache.info["credentials"][0]
        assert again["credentials"][1]["write"] is False
        assert (
            again["dashboard_url"].split("/dashboard/")[1]
            == (cache.info["dashboard_url"].split("/dashboard/")[1])
        )
        restarted = CacheHandle(again)
        client = pymemcache_client(restarted)
        assert client.get("item") == b"volatile"
        assert client.set("item", "again", noreply=False) is True
    finally:
        second.stop()
