"""The audit trail against the real backend: every control-plane change with what, when and
by whom; the owner sees their cache's, the operator all; it survives a restart and never
holds a secret."""

from __future__ import annotations

import httpx
import pytest

from tests.backend.test_auth import pymemcache_client
from tests.backend.test_data_at_rest import DRAIN
from tests.conftest import ADMIN_TOKEN, CacheHandle, RunningService, make_config

OPERATOR = "operator (admin token)"
DASHBOARD = "cache owner (dashboard)"


def trail(cache: CacheHandle, **params: object) -> list[dict]:
    answer = httpx.get(f"{cache.dashboard_api}/audit", params=params, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()["entries"]


def admin_trail(service: RunningService, **params: object) -> dict:
    with service.admin() as client:
        answer = client.get("/api/v1/admin/audit", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def walk_through_every_change(service: RunningService, cache: CacheHandle) -> list[str]:
    """Every change an owner, an operator and a client can make; returns the secrets
    seen on the way (none may reach the trail)."""
    secrets = [cache.password, cache.info["dashboard_url"].rsplit("/", 1)[1]]
    with httpx.Client(base_url=cache.dashboard_api, timeout=5) as owner:
        added = owner.post("/credentials").json()
        secrets.append(added["password"])
        user = added["username"]
        assert owner.patch(f"/credentials/{user}", json={"write": False}).status_code == 200
        assert owner.post(f"/credentials/{user}/promote").status_code == 200
        assert owner.put("/app/log-drain", json={"url": DRAIN}).status_code == 200
        assert owner.post("/flush").status_code == 200
        assert owner.post("/migrate").status_code == 200
        assert owner.delete(f"/credentials/{cache.username}").status_code == 200
        rotated = owner.post("/sso/rotate").json()["dashboard_url"]
    secrets.append(rotated.rsplit("/", 1)[1])
    secrets += ["Pw4drainOnly", "Tok4drainOnly"]  # DRAIN's user:password and token
    cache.info["dashboard_url"] = rotated
    cache.info["credentials"] = [added]
    client = pymemcache_client(cache)
    try:
        client.flush_all(noreply=False)
    finally:
        client.close()
    with service.admin() as operator:
        assert operator.post(f"/api/v1/admin/caches/{cache.info['id']}/flush").status_code == 200
    return secrets


def test_every_change_is_recorded_with_who_did_it(tmp_path) -> None:
    service = RunningService(make_config(tmp_path)).start()
    try:
        cache = CacheHandle(service.create_cache("audited"))
        other = CacheHandle(service.create_cache("bystander"))
        first_user, old_url = cache.username, cache.info["dashboard_url"]
        secrets = walk_through_every_change(service, cache)
        entries = trail(cache)
        seen = [(e["actor"], e["action"]) for e in reversed(entries)]  # oldest first
        assert seen == [
            (OPERATOR, "cache created"),
            (OPERATOR, "credential added"),  # the primary, created with the cache
            (DASHBOARD, "credential added"),
            (DASHBOARD, "capabilities changed"),
            (DASHBOARD, "primary promoted"),
            (DASHBOARD, "log drain changed"),
            (DASHBOARD, "cache flushed"),
            (DASHBOARD, "cache flushed"),  # a move flushes the old cluster's copy ...
            (DASHBOARD, "cache moved"),  # ... then moves
            (DASHBOARD, "credential deleted"),
            (DASHBOARD, "SSO rotated"),
            ("memcache client", "cache flushed"),
            (OPERATOR, "cache flushed"),
        ], seen
        details = {e["action"]: e["detail"] for e in reversed(entries)}
        second = cache.username
        assert details["capabilities changed"] == f"{second}: write off, flush on, api off"
        assert details["primary promoted"] == f"{second} (was {first_user})"
        assert details["credential deleted"] == first_user
        assert details["log drain changed"].endswith("to 127.0.0.1")
        assert "local-a" in details["cache moved"] or "local-b" in details["cache moved"]
        assert all(e["cache_id"] == cache.info["id"] for e in entries)
        assert all(e["cache_name"] == "audited" for e in entries)
        assert all(e["t"].endswith("Z") for e in entries)
        # the owner sees their own cache only; the old dashboard URL sees nothing
        assert all(e["cache_name"] == "bystander" for e in trail(other))
        assert httpx.get(f"{old_url}/api/audit", timeout=5).status_code == 404

        # an operator sees everything, a fault injection (no cache) included
        with service.admin() as operator:
            hostname = "proxy-1.local-a.local.cachier.internal"
            for mode in ("slow", "none"):
                body = {"mode": mode, "delay_ms": 50}
                assert operator.post(f"/api/v1/admin/proxies/{hostname}/fault", json=body)
        everything = admin_trail(service)["entries"]
        assert [e["detail"] for e in everything[:2]] == [
            f"{hostname}: cleared",
            f"{hostname}: slow, +50 ms",
        ]
        assert everything[0]["cache_id"] is None and everything[0]["actor"] == OPERATOR
        assert {e["cache_name"] for e in everything} == {"audited", "bystander", None}
        text = repr(everything) + repr(entries)
        for secret in secrets:
            assert secret not in text
    finally:
        service.stop()

    # it survives a restart, and a deleted cache's trail stays for the operator
    again = RunningService(make_config(tmp_path)).start()
    try:
        path = "/dashboard/" + cache.info["dashboard_url"].rsplit("/dashboard/", 1)[1]
        cache.info["dashboard_url"] = again.api_url + path  # the API's new port
        assert [e["id"] for e in trail(cache)] == [e["id"] for e in entries]
        with again.admin() as operator:
            assert operator.delete(f"/api/v1/admin/caches/{cache.info['id']}").status_code == 204
        kept = admin_trail(again, cache_id=cache.info["id"])["entries"]
        assert kept[0]["action"] == "cache deleted" and kept[0]["cache_name"] == "audited"
        assert len(kept) == len(entries) + 1
    finally:
        again.stop()


def test_the_trail_pages_newest_first(tmp_path) -> None:
    service = RunningService(make_config(tmp_path)).start()
    try:
        cache = CacheHandle(service.create_cache("paged"))
        with httpx.Client(base_url=cache.dashboard_api, timeout=5) as owner:
            for _ in range(7):
                assert owner.post("/credentials").status_code == 201
        everything = trail(cache, limit=1000)
        assert len(everything) == 9  # created, its primary, seven more credentials
        ids = [e["id"] for e in everything]
        assert ids == sorted(ids, reverse=True)
        pages, before = [], None
        while True:
            params = {"limit": 4} | ({"before": before} if before else {})
            page = httpx.get(f"{cache.dashboard_api}/audit", params=params, timeout=5).json()
            pages += [e["id"] for e in page["entries"]]
            before = page["next_before"]
            if not page["entries"]:
                break
        assert pages == ids and before is None
    finally:
        service.stop()


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=1001", "before=0", "before=x", "limit=9223372036854775808"]
)
def test_bad_paging_is_a_422(service: RunningService, cache: CacheHandle, query: str) -> None:
    assert httpx.get(f"{cache.dashboard_api}/audit?{query}", timeout=5).status_code == 422
    with service.admin() as operator:
        assert operator.get(f"/api/v1/admin/audit?{query}").status_code == 422


def test_the_service_trail_needs_the_admin_token(service: RunningService) -> None:
    assert httpx.get(f"{service.api_url}/api/v1/admin/audit", timeout=5).status_code == 401
    wrong = {"Authorization": f"Bearer {ADMIN_TOKEN}x"}
    answer = httpx.get(f"{service.api_url}/api/v1/admin/audit", headers=wrong, timeout=5)
    assert answer.status_code == 401
