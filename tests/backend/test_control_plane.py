"""The dashboard API end to end: httpx on the API, real memcache clients on the wire.

Every test runs on both control repositories (SQLite and PostgreSQL), so they stay equal.
"""

from __future__ import annotations

import http.server
import threading
import time

import httpx
import pytest
from pymemcache.exceptions import MemcacheUnexpectedCloseError

from tests.backend.test_auth import pymemcache_client
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config


@pytest.fixture(scope="module")
def service(each_database_service: RunningService) -> RunningService:
    return each_database_service


def api(cache: CacheHandle) -> httpx.Client:
    return httpx.Client(base_url=cache.dashboard_api, timeout=10)


def add_credential(cache: CacheHandle) -> dict:
    with api(cache) as client:
        response = client.post("/credentials")
    assert response.status_code == 201
    return response.json()


def log_messages(cache: CacheHandle, limit: int = 1000) -> list[dict]:
    with api(cache) as client:
        return client.get("/logs", params={"limit": limit}).json()["lines"]


# -- credentials ----------------------------------------------------------------------------
def test_deleting_a_credential_closes_its_connections_and_stops_its_logins(
    cache: CacheHandle,
) -> None:
    doomed = add_credential(cache)
    live = Wire.authenticated(cache, doomed["username"], doomed["password"])
    assert live.ask(b"set k 0 0 1\r\nx\r\n") == b"STORED\r\n"
    with api(cache) as client:
        response = client.delete(f"/credentials/{doomed['username']}")
    assert response.status_code == 200
    assert response.json() == {"username": doomed["username"], "closed_connections": 1}
    assert live.read_to_close() == b""
    retry = Wire(cache.endpoint)
    secret = doomed["password"].encode()
    retry.send(b"set %s 0 0 %d\r\n%s\r\n" % (doomed["username"].encode(), len(secret), secret))
    assert retry.read_to_close() == b"CLIENT_ERROR authentication failure\r\n"
    survivor = Wire.authenticated(cache)  # the primary is untouched
    assert survivor.ask(b"get k\r\n") == b"VALUE k 0 1\r\nx\r\nEND\r\n"


def test_the_primary_cannot_be_deleted(cache: CacheHandle) -> None:
    with api(cache) as client:
        response = client.delete(f"/credentials/{cache.username}")
        listed = client.get("/credentials").json()
    assert response.status_code == 409
    assert "promote another credential first" in response.json()["error"]
    assert [c["username"] for c in listed] == [cache.username]


def test_promotion_pushes_config_vars_and_keeps_the_old_primary_working(
    cache: CacheHandle,
) -> None:
    old_client = pymemcache_client(cache)
    assert old_client.set("before", "1", noreply=False)
    newer = add_credential(cache)
    with api(cache) as client:
        before = client.get("/app").json()
        promoted = client.post(f"/credentials/{newer['username']}/promote")
        after = client.get("/app").json()
        listed = {c["username"]: c["primary"] for c in client.get("/credentials").json()}
    assert promoted.status_code == 200 and promoted.json()["primary"] is True
    assert listed == {cache.username: False, newer["username"]: True}
    assert before["config_vars"]["MEMCACHIER_USERNAME"] == cache.username
    assert after["config_vars"] == {
        "MEMCACHIER_SERVERS": cache.info["servers"],
        "MEMCACHIER_USERNAME": newer["username"],
        "MEMCACHIER_PASSWORD": newer["password"],
    }
    assert after["release"] == before["release"] + 1
    assert after["releases"][0]["number"] == after["release"]
    assert "MEMCACHIER_USERNAME" in after["releases"][0]["description"]
    messages = [line["message"] for line in log_messages(cache)]
    assert any("promoted to primary" in m for m in messages)
    assert any(m.startswith(f"Release v{after['release']} created") for m in messages)
    assert any("restarted" in m for m in messages)
    # zero downtime: the old primary's open connection and new logins keep working
    assert old_client.get("before") == b"1"
    assert pymemcache_client(cache).get("before") == b"1"


def test_promoting_the_primary_again_is_a_conflict(cache: CacheHandle) -> None:
    with api(cache) as client:
        response = client.post(f"/credentials/{cache.username}/promote")
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("patch", "/credentials/NOPE", {"write": False}, 404),
        ("post", "/credentials/NOPE/promote", None, 404),
        ("delete", "/credentials/NOPE", None, 404),
        ("patch", "/credentials/{user}", {"write": "sometimes"}, 422),
        ("patch", "/credentials/{user}", {"read": True}, 422),
        ("put", "/app/log-drain", {"url": "ftp://example.com/x"}, 422),
        ("put", "/app/log-drain", {"address": "https://x"}, 422),
        ("get", "/logs?limit=0", None, 422),
        ("get", "/logs?after=-1", None, 422),
    ],
)
def test_bad_dashboard_requests_get_json_errors(
    cache: CacheHandle, method: str, path: str, body: dict | None, status: int
) -> None:
    with api(cache) as client:
        kwargs = {"json": body} if body is not None else {}
        response = client.request(method, path.format(user=cache.username), **kwargs)
    assert response.status_code == status
    assert response.json()["error"]


def test_malformed_json_on_a_dashboard_route_is_a_422(cache: CacheHandle) -> None:
    with api(cache) as client:
        response = client.patch(
            f"/credentials/{cache.username}",
            content=b"{",
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 422


# -- SSO ------------------------------------------------------------------------------------
def test_rotating_the_sso_secret_kills_the_old_url_at_once(cache: CacheHandle) -> None:
    old = cache.dashboard_api
    with api(cache) as client:
        rotated = client.post("/sso/rotate")
    new_url = rotated.json()["dashboard_url"]
    assert new_url != cache.info["dashboard_url"]
    assert httpx.get(old + "/cache").status_code == 404
    info = httpx.get(new_url + "/api/cache").json()
    assert info["name"] == cache.info["name"] and info["dashboard_url"] == new_url
    messages = [line["message"] for line in httpx.get(new_url + "/api/logs").json()["lines"]]
    assert any("SSO secret rotated" in m for m in messages)
    assert not any(new_url.rsplit("/", 1)[1] in m for m in messages)


# -- flush origins --------------------------------------------------------------------------
def test_each_flush_origin_logs_one_line_naming_the_proxy(
    service: RunningService, cache: CacheHandle
) -> None:
    Wire.authenticated(cache).ask(b"flush_all\r\n")
    with api(cache) as client:
        web = client.post("/flush").json()
    with service.admin() as admin:
        admin.post(f"/api/v1/admin/caches/{cache.info['id']}/flush")
    flushes = [line for line in log_messages(cache) if line["origin"]]
    assert [line["origin"] for line in flushes] == [
        "memcache client",
        "web interface",
        "admin operation",
    ]
    proxies = service.listening.proxies
    for line in flushes:
        assert line["proxy"] in proxies and f".{cache.info['cluster']}." in line["proxy"]
        assert line["proxy"] in line["message"] and line["origin"] in line["message"]
    assert web == {
        "cache_id": cache.info["id"],
        "proxy": flushes[1]["proxy"],
        "origin": "web interface",
    }


# -- migration ------------------------------------------------------------------------------
def cache_keys_on(service: RunningService, cluster: str, cache_id: str) -> int:
    def count() -> int:
        engine = service.service.dataplane.stores[cluster].engines.get(cache_id)
        return 0 if engine is None else engine.usage().items

    return service.call(count)


def test_migration_moves_the_cache_and_clients_reconnect_to_the_new_cluster(
    service: RunningService, cache: CacheHandle
) -> None:
    client = pymemcache_client(cache)
    client.set("old-data", "x", noreply=False)
    old_cluster = cache.info["cluster"]
    assert cache_keys_on(service, old_cluster, cache.info["id"]) == 1
    with api(cache) as dashboard:
        moved = dashboard.post("/migrate")
        info = dashboard.get("/cache").json()
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert body["previous_cluster"] == old_cluster != body["cluster"]
    assert body["servers"] == cache.info["servers"] == info["servers"]
    assert info["cluster"] == body["cluster"]
    assert cache_keys_on(service, old_cluster, cache.info["id"]) == 0
    # the open connection was closed; pymemcache reconnects (and re-authenticates)
    with pytest.raises(MemcacheUnexpectedCloseError):
        client.get("old-data")
    assert client.get("old-data") is None
    assert client.set("new-data", "y", noreply=False)
    assert cache_keys_on(service, body["cluster"], cache.info["id"]) == 1
    flushes = [line for line in log_messages(cache) if line["origin"]]
    assert flushes[-1]["origin"] == "admin operation"
    assert f".{old_cluster}." in flushes[-1]["proxy"]
    with service.admin() as admin:
        assert (
            admin.get(f"/api/v1/admin/caches/{cache.info['id']}").json()["cluster"]
            == (body["cluster"])
        )


def test_free_plan_cannot_migrate(service: RunningService) -> None:
    free = CacheHandle(service.create_cache("freebie", plan="free"))
    with api(free) as dashboard:
        info = dashboard.get("/cache").json()
        refused = dashboard.post("/migrate")
    assert info["can_migrate"] is False and "paid plans only" in info["migrate_refusal"]
    assert refused.status_code == 403
    assert "paid plans only" in refused.json()["error"]


# -- logs -----------------------------------------------------------------------------------
def test_logs_page_forward_from_a_cursor(cache: CacheHandle) -> None:
    for _ in range(5):
        add_credential(cache)
    with api(cache) as client:
        newest = client.get("/logs", params={"limit": 3}).json()
        first = client.get("/logs", params={"after": 0, "limit": 2}).json()
        rest = client.get("/logs", params={"after": first["next_after"], "limit": 100}).json()
        empty = client.get("/logs", params={"after": rest["next_after"]}).json()
    everything = first["lines"] + rest["lines"]
    assert [line["id"] for line in everything] == sorted(line["id"] for line in everything)
    assert newest["lines"] == everything[-3:]
    assert empty == {"lines": [], "next_after": rest["next_after"]}
    assert all(line["t"].endswith("Z") and line["source"] == "cachier" for line in everything)


def test_cache_info_for_its_owner(cache: CacheHandle) -> None:
    with api(cache) as client:
        info = client.get("/cache").json()
    assert info["servers"] == cache.info["servers"]
    assert info["memory_limit"] == 100 * 1024 * 1024
    assert info["can_migrate"] is True and info["migrate_refusal"] is None
    assert info["app"] == f"app-{cache.info['name']}"


# -- persistence ----------------------------------------------------------------------------
def test_everything_of_the_control_plane_survives_a_restart(tmp_path, database: str) -> None:
    first = RunningService(make_config(tmp_path, endpoint_port=0, database=database)).start()
    cache = CacheHandle(first.create_cache("keeper"))
    extra = add_credential(cache)
    with api(cache) as client:
        client.patch(f"/credentials/{extra['username']}", json={"flush": False})
        client.post(f"/credentials/{extra['username']}/promote")
        rotated = client.post("/sso/rotate").json()["dashboard_url"]
    with httpx.Client(base_url=rotated + "/api") as client:
        client.put("/app/log-drain", json={"url": "http://127.0.0.1:9/drain"})
        app_before = client.get("/app").json()
        logs_before = client.get("/logs", params={"limit": 1000}).json()["lines"]
    first.stop()

    second = RunningService(make_config(tmp_path, endpoint_port=0, database=database)).start()
    try:
        old_url = cache.dashboard_api.replace(first.api_url, second.api_url)
        assert httpx.get(old_url + "/cache").status_code == 404  # rotated away
        base = rotated.replace(first.api_url, second.api_url) + "/api"
        with httpx.Client(base_url=base) as client:
            creds = {c["username"]: c for c in client.get("/credentials").json()}
            app_after = client.get("/app").json()
            logs_after = client.get("/logs", params={"limit": 1000}).json()["lines"]
        assert creds[extra["username"]]["primary"] and not creds[extra["username"]]["flush"]
        assert not creds[cache.username]["primary"]
        assert app_after["log_drain"] == "http://127.0.0.1:9/drain"
        assert app_after["config_vars"]["MEMCACHIER_USERNAME"] == extra["username"]
        assert app_after["release"] >= app_before["release"]
        assert logs_after[: len(logs_before)] == logs_before
    finally:
        second.stop()


# -- log drain ------------------------------------------------------------------------------
class DrainReceiver:
    """A real HTTP server on loopback recording what a log drain POSTs."""

    def __init__(self) -> None:
        received = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/drain"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def frames(self) -> list[bytes]:
        frames = []
        for _, body in self.requests:
            while body:
                length, _, rest = body.partition(b" ")
                frames.append(rest[: int(length)])
                body = rest[int(length) :]
        return frames


def test_app_log_lines_reach_the_log_drain(cache: CacheHandle) -> None:
    receiver = DrainReceiver()
    try:
        with api(cache) as client:
            assert client.put("/app/log-drain", json={"url": receiver.url}).status_code == 200
            client.post("/flush")
        deadline = time.monotonic() + 10
        while not any(b"origin: web interface" in f for f in receiver.frames()):
            assert time.monotonic() < deadline, receiver.frames()
            time.sleep(0.05)
        headers, _ = receiver.requests[0]
        assert headers["Content-Type"] == "application/logplex-1"
        frame = next(f for f in receiver.frames() if b"web interface" in f)
        assert frame.startswith(b"<190>1 ") and frame.endswith(b"\n")
        assert f" app-{cache.info['name']} cachier cachier - Cache flushed".encode() in frame
        with api(cache) as client:
            app = client.put("/app/log-drain", json={"url": None}).json()
        assert app["log_drain"] is None
    finally:
        receiver.server.shutdown()


# -- analytics ------------------------------------------------------------------------------
def test_stats_route_serves_sampled_series(tmp_path) -> None:
    running = RunningService(make_config(tmp_path, sample_interval=0.05)).start()
    try:
        cache = CacheHandle(running.create_cache("graphs"))
        wire = Wire.authenticated(cache)
        wire.ask(b"set a 0 0 1\r\nx\r\nget a\r\nget a\r\nget a\r\nget b\r\n")
        deadline = time.monotonic() + 10
        with api(cache) as client:
            while True:
                samples = client.get("/stats").json()["samples"]
                if samples and samples[-1]["get_hits"] == 3:
                    break
                assert time.monotonic() < deadline, samples[-1:]
                time.sleep(0.05)
            body = client.get("/stats", params={"window": 3600}).json()
            newest = samples[-1]["t"]
            newer = client.get("/stats", params={"since": newest}).json()["samples"]
            bad = client.get("/stats", params={"window": 0})
        last = samples[-1]
        assert (last["get_misses"], last["cmd_set"], last["items"]) == (1, 1, 1)
        assert last["curr_connections"] == 1
        assert last["memory_limit"] == 100 * 1024 * 1024 and last["memory_used"] > 0
        assert body["interval_s"] == 60 and body["samples"]
        assert bad.status_code == 422
        assert all(sample["t"] > newest for sample in newer)
    finally:
        running.stop()
