"""Alerts against the real backend: thresholds set over the API, conditions driven by real
memcache traffic (pymemcache), the app-log lines, the webhook (a real HTTP receiver on
loopback that fails first), the Prometheus series and the hysteresis, sample by sample.

The service samples every ``INTERVAL`` s (``--sample-interval``) so alerts fire in
fractions of a second.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymemcache.client.base import Client

from backend.alerts import Alerts
from backend.analytics import Analytics
from tests.backend.test_control_database import psycopg_connect
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config

INTERVAL = 0.1


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    config = make_config(tmp_path_factory.mktemp("data"), sample_interval=INTERVAL)
    running = RunningService(config).start()
    yield running
    running.stop()


# -- a webhook receiver -------------------------------------------------------------------
class Receiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST; ``status_for(n)`` answers
    the n-th request (from 0)."""

    def __init__(self, status_for: Callable[[int], int] = lambda n: 200) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any], float]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                n = len(receiver.requests)
                receiver.requests.append(
                    ({k.lower(): v for k, v in self.headers.items()}, json.loads(body), time.time())
                )
                self.send_response(status_for(n))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret-token"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(lambda n: 500 if n == 0 else 200)  # the first POST fails
    yield server
    server.close()


# -- helpers ------------------------------------------------------------------------------
def memcache(cache: CacheHandle) -> Client:
    client = Client(cache.endpoint, connect_timeout=5, timeout=5)
    client.set(cache.username, cache.password)  # the ASCII auth set
    return client


def wait_until(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def alerts_of(cache: CacheHandle) -> dict:
    response = httpx.get(f"{cache.dashboard_api}/alerts", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def alert(cache: CacheHandle, kind: str) -> dict:
    return next(a for a in alerts_of(cache)["alerts"] if a["alert"] == kind)


def put_alerts(cache: CacheHandle, **body: Any) -> httpx.Response:
    return httpx.put(f"{cache.dashboard_api}/alerts", json=body, timeout=10)


def log_messages(cache: CacheHandle) -> list[str]:
    response = httpx.get(f"{cache.dashboard_api}/logs", params={"limit": 1000}, timeout=10)
    return [line["message"] for line in response.json()["lines"]]


def metric(service: RunningService, cache_name: str, kind: str) -> float | None:
    text = httpx.get(f"{service.api_url}/metrics", timeout=10).text
    pattern = rf'^cachier_alert_firing\{{alert="{kind}",cache="{re.escape(cache_name)}"\}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else None


class Misses:
    """A thread sending gets of absent keys until stopped: the hit rate falls to 0."""

    def __init__(self, cache: CacheHandle) -> None:
        self.client = memcache(cache)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            self.client.get("absent-key")
            time.sleep(0.002)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.close()


# -- the API ------------------------------------------------------------------------------
def test_settings_round_trip_and_defaults(cache: CacheHandle) -> None:
    empty = alerts_of(cache)
    assert empty["alerts"] == [] and empty["firing"] == 0
    assert empty["settings"]["fire_after"] == 3 and empty["settings"]["hit_rate_below"] is None
    response = put_alerts(cache, memory_above=80, connections_above=10, fire_after=2)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["settings"]["memory_above"] == 80
    assert answer["settings"]["connections_above"] == 10
    assert answer["settings"]["resolve_after"] == 5  # left out: the default
    assert [a["alert"] for a in answer["alerts"]] == ["memory", "connections"]  # at once
    assert [a["alert"] for a in alerts_of(cache)["alerts"]] == ["memory", "connections"]
    assert not any(a["firing"] for a in alerts_of(cache)["alerts"])
    assert any("Alert thresholds set: memory > 80% of the plan" in m for m in log_messages(cache))
    # A PUT replaces everything: the memory threshold is gone.
    assert put_alerts(cache, connections_above=10).status_code == 200
    assert [a["alert"] for a in alerts_of(cache)["alerts"]] == ["connections"]


@pytest.mark.parametrize(
    "body",
    [
        {"hit_rate_below": 101},
        {"memory_above": -1},
        {"fire_after": 0},
        {"resolve_after": 1.5},
        {"connections_above": "5"},
        {"hit_rate_window_min": 0},
        {"evictions_above": True},
        {"webhook_url": "ftp://example.com/x"},
        {"webhook_url": "http://[::1/"},
        {"nope": 1},
    ],
)
def test_bad_settings_are_422_and_change_nothing(cache: CacheHandle, body: dict) -> None:
    assert put_alerts(cache, memory_above=50).status_code == 200
    response = put_alerts(cache, **body)
    assert response.status_code == 422, response.text
    assert "error" in response.json() or "detail" in response.json()
    assert alerts_of(cache)["settings"]["memory_above"] == 50


def test_a_link_local_webhook_is_refused(cache: CacheHandle) -> None:
    response = put_alerts(cache, memory_above=50, webhook_url="http://169.254.169.254/latest")
    assert response.status_code == 422
    assert "link-local" in response.text


def test_an_unknown_dashboard_is_404(service: RunningService) -> None:
    url = f"{service.api_url}/dashboard/not-a-secret/api/alerts"
    assert httpx.get(url).status_code == 404
    assert httpx.put(url, json={"memory_above": 5}).status_code == 404


def test_the_webhook_url_is_never_logged(cache: CacheHandle, receiver: Receiver) -> None:
    assert put_alerts(cache, memory_above=90, webhook_url=receiver.url).status_code == 200
    assert alerts_of(cache)["settings"]["webhook_url"] == receiver.url  # the owner sees it
    messages = log_messages(cache)
    assert any("webhook to 127.0.0.1" in m for m in messages)
    assert not any("s3cret-token" in m for m in messages)


# -- firing and resolving, end to end -------------------------------------------------------
def test_hit_rate_fires_once_then_resolves_with_log_metric_and_webhook(
    service: RunningService, cache: CacheHandle, receiver: Receiver
) -> None:
    fire_after, resolve_after = 3, 4
    response = put_alerts(
        cache,
        hit_rate_below=50,
        hit_rate_window_min=0.01,  # 0.6 s
        fire_after=fire_after,
        resolve_after=resolve_after,
        webhook_url=receiver.url,
    )
    assert response.status_code == 200, response.text
    name = cache.info["name"]
    wait_until(lambda: alerts_of(cache)["alerts"])
    assert metric(service, name, "hit_rate") == 0.0

    misses = Misses(cache)
    started = time.time()
    try:
        fired = wait_until(lambda: alert(cache, "hit_rate")["firing"] and alert(cache, "hit_rate"))
        assert fired["value"] == 0.0 and fired["threshold"] == 50
        assert metric(service, name, "hit_rate") == 1.0
        assert alerts_of(cache)["firing"] == 1
        # The badge figures: the owner's cache and the operator's list.
        assert httpx.get(f"{cache.dashboard_api}/cache").json()["alerts_firing"] == 1
        with service.admin() as admin:
            page = admin.get("/api/v1/admin/caches").json()
            listed = {c["id"]: c for c in page["items"]}
            # Every cache's count, whatever the page holds or q keeps (the title badge).
            elsewhere = admin.get("/api/v1/admin/caches", params={"q": "no-such-cache"}).json()
        assert listed[cache.info["id"]]["alerts_firing"] == 1
        assert page["alerts_firing"] == 1 and elsewhere["alerts_firing"] == 1
        assert elsewhere["items"] == []
        time.sleep(10 * INTERVAL)  # still breached: it stays firing, and fires only once
    finally:
        misses.close()
    stopped = time.time()
    # Hits now: the window (0.6 s) fills with hits, the rate climbs over 50 %.
    client = memcache(cache)
    try:
        client.set("present", b"v")
        deadline = time.monotonic() + 10
        while not (resolved := not alert(cache, "hit_rate")["firing"]):
            assert time.monotonic() < deadline, "never resolved"
            for _ in range(20):
                client.get("present")
            time.sleep(0.01)
    finally:
        client.close()
    assert resolved
    assert metric(service, name, "hit_rate") == 0.0
    messages = log_messages(cache)
    firing = [m for m in messages if m.startswith("Alert hit_rate firing")]
    resolved_lines = [m for m in messages if m.startswith("Alert hit_rate resolved")]
    assert len(firing) == 1 and len(resolved_lines) == 1, messages
    assert "hit rate 0% is below 50%" in firing[0]
    # The webhook: firing (after one 500, retried with the same delivery id), then resolved.
    wait_until(lambda: len(receiver.requests) >= 3)
    (h0, first, _), (h1, retried, _), (_, last, _) = receiver.requests[:3]
    assert first == retried and h0["x-cachier-delivery"] == h1["x-cachier-delivery"]
    assert first["status"] == "firing" and first["alert"] == "hit_rate"
    assert first["cache"] == name and first["threshold"] == 50 and first["value"] == 0.0
    assert last["status"] == "resolved" and last["alert"] == "hit_rate"
    assert h0["content-type"] == "application/json"
    assert len(receiver.requests) == 3  # exactly one firing and one resolved delivered
    # Hysteresis: it fired no sooner than fire_after samples after the misses began.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["t"])
    assert receiver.requests[0][2] - started >= (fire_after - 1) * INTERVAL
    assert receiver.requests[2][2] - stopped >= (resolve_after - 1) * INTERVAL


def test_connections_alert_follows_real_connections(
    service: RunningService, cache: CacheHandle
) -> None:
    assert put_alerts(cache, connections_above=2, fire_after=2, resolve_after=2).status_code == 200
    clients = [memcache(cache) for _ in range(3)]
    try:
        for c in clients:
            c.get("x")
        fired = wait_until(
            lambda: alert(cache, "connections")["firing"] and alert(cache, "connections")
        )
        assert fired["value"] == 3
    finally:
        for c in clients:
            c.close()
    wait_until(lambda: not alert(cache, "connections")["firing"])
    messages = log_messages(cache)
    assert sum(m.startswith("Alert connections firing") for m in messages) == 1
    assert sum(m.startswith("Alert connections resolved") for m in messages) == 1


def test_refused_commands_fire_from_capability_refusals(
    service: RunningService, cache: CacheHandle
) -> None:
    username = cache.username
    patch = httpx.patch(
        f"{cache.dashboard_api}/credentials/{username}", json={"write": False}, timeout=10
    )
    assert patch.status_code == 200
    assert put_alerts(cache, refused_above=60, fire_after=2, resolve_after=2).status_code == 200
    stop = threading.Event()
    refusals = [0]

    def refuse() -> None:  # one connection, refused again and again (pymemcache reconnects
        wire = Wire.authenticated(cache)  # after an error, and a new connection's first
        while not stop.is_set():  # command would be taken as its login)
            reply = wire.ask(b"set k 0 0 1\r\nv\r\n")
            assert b"not allowed" in reply, reply
            refusals[0] += 1
            time.sleep(0.005)
        wire.close()

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    try:
        wait_until(lambda: alert(cache, "refused")["firing"])
    finally:
        stop.set()
        thread.join(5)
    assert refusals[0] > 0
    wait_until(lambda: not alert(cache, "refused")["firing"])


def test_removing_a_firing_threshold_resolves_it(
    service: RunningService, cache: CacheHandle
) -> None:
    clients = [memcache(cache) for _ in range(2)]
    try:
        for c in clients:
            c.get("x")
        assert put_alerts(cache, connections_above=1, fire_after=1).status_code == 200
        wait_until(lambda: alert(cache, "connections")["firing"])
        assert put_alerts(cache, memory_above=99).status_code == 200
        wait_until(lambda: [a["alert"] for a in alerts_of(cache)["alerts"]] == ["memory"])
        messages = log_messages(cache)
        assert any(
            m.startswith("Alert connections resolved") and "threshold removed" in m
            for m in messages
        )
    finally:
        for c in clients:
            c.close()


# -- hysteresis, one sample at a time -------------------------------------------------------
def test_hysteresis_sample_by_sample(service: RunningService, cache: CacheHandle) -> None:
    """A private Analytics and Alerts over the service's data plane, stepped by hand: the
    connection count (real connections) is the condition; the evaluator's answers are
    checked at every sample. (The service's own evaluator watches the same cache too; only
    this evaluator's answers are asserted.)"""
    assert put_alerts(cache, connections_above=1, fire_after=3, resolve_after=3).status_code == 200
    running = service.service
    assert running is not None and running.control is not None and running.dataplane is not None
    control, dataplane = running.control, running.dataplane
    clock = [time.time()]
    # A second sampler of the data plane: the service's own takes the noted changes.
    analytics = Analytics(dataplane, 1.0, clock=lambda: clock[0], every_cache=True)
    alerts = service.call_control(
        lambda: Alerts(control, analytics, dataplane, None, clock=lambda: clock[0])
    )

    # Alerts() registered itself as the control plane's firing counter: give it back.
    def give_back() -> None:
        control.alerts_firing = running.alerts.firing_count
        control.alerts_firing_total = running.alerts.firing_total

    service.call_control(give_back)
    cache_id = cache.info["id"]

    def connections_now() -> int:
        return service.call(lambda: dataplane.caches[cache_id] and _conns(dataplane, cache_id))

    def step() -> list[tuple[str, str]]:
        clock[0] += 1.0

        def run() -> list[tuple[str, str]]:
            analytics.sample()
            return [(c.kind, c.status) for c in alerts.evaluate()]

        return service.call_control(run)

    def hold(count: int) -> None:
        wait_until(lambda: connections_now() == count)

    step()  # first sample: the evaluator starts watching
    opened = [memcache(cache) for _ in range(2)]
    for c in opened:
        c.get("x")
    hold(2)
    assert step() == [] and step() == []
    assert step() == [("connections", "firing")]  # the third breached sample
    assert step() == []  # fires once
    # Clear for two samples, breached again: the count starts over, nothing resolves.
    opened.pop().close()
    hold(1)
    assert step() == [] and step() == []
    again = memcache(cache)
    again.get("x")
    hold(2)
    assert step() == []
    opened.append(again)
    for c in opened:
        c.close()
    hold(0)
    assert step() == [] and step() == []
    assert step() == [("connections", "resolved")]
    assert step() == []


def _conns(dataplane: Any, cache_id: str) -> int:
    engine = dataplane.peek_engine(dataplane.caches[cache_id])
    return 0 if engine is None else engine.stats.curr_connections


# -- storage --------------------------------------------------------------------------------
HOOK = "http://hook-user:Pw4hookOnly@127.0.0.1:9/alerts?token=Tok4hookOnly"


def test_settings_survive_a_restart_and_the_webhook_is_encrypted_at_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, database: str
) -> None:
    """On SQLite (the data dir's files) and on PostgreSQL (the table's rows)."""
    data = tmp_path / "data"
    caplog.set_level(logging.DEBUG)
    config = make_config(data, sample_interval=INTERVAL, database=database)
    first = RunningService(config).start()
    try:
        cache = CacheHandle(first.create_cache("hooked"))
        answer = put_alerts(cache, memory_above=75, fire_after=4, webhook_url=HOOK)
        assert answer.status_code == 200, answer.text
        running = stored_bytes(data, database)
    finally:
        first.stop()
    for blob in (running, stored_bytes(data, database)):
        assert b"hooked" in blob or database  # (the SQLite files hold the cache's name)
        assert b"Pw4hookOnly" not in blob and b"Tok4hookOnly" not in blob
    assert "Pw4hookOnly" not in caplog.text and "Tok4hookOnly" not in caplog.text
    second = RunningService(config).start()
    try:
        moved = CacheHandle(
            {
                **cache.info,
                "dashboard_url": cache.info["dashboard_url"].replace(first.api_url, second.api_url),
            }
        )
        settings = alerts_of(moved)["settings"]
        assert settings["memory_above"] == 75 and settings["fire_after"] == 4
        assert settings["webhook_url"] == HOOK
        assert [a["alert"] for a in alerts_of(moved)["alerts"]] == ["memory"]
    finally:
        second.stop()


def stored_bytes(data_dir: Path, database: str) -> bytes:
    """Everything SQLite keeps in the data dir, or every alert row PostgreSQL keeps."""
    if not database:
        return b"".join(p.read_bytes() for p in sorted(data_dir.iterdir()) if p.is_file())
    with psycopg_connect(database) as db:
        rows = db.execute("SELECT cache_id, rules, webhook_enc FROM alert_settings").fetchall()
        logs = db.execute("SELECT message FROM app_logs").fetchall()
    assert rows and any(r[2] for r in rows)
    return repr((rows, logs)).encode()


# -- the refusal counter (the data plane's one addition) ------------------------------------
def test_every_codec_counts_its_capability_refusals_per_cache(
    service: RunningService, cache: CacheHandle
) -> None:
    from tests.backend.test_binary import AUTH_ERROR, FLUSH, SET, Binary
    from tests.backend.wire import store_extras

    running = service.service
    assert running is not None and running.dataplane is not None
    dataplane, cache_id = running.dataplane, cache.info["id"]

    def refused() -> int:
        return service.call(lambda: _engine(dataplane, cache_id).stats.cmd_refused)

    ascii_wire = Wire.authenticated(cache)  # the engine exists once a client logged in
    assert refused() == 0
    username = cache.username
    patch = httpx.patch(
        f"{cache.dashboard_api}/credentials/{username}", json={"write": False, "flush": False}
    )
    assert patch.status_code == 200
    assert b"not allowed" in ascii_wire.ask(b"set k 0 0 1\r\nv\r\n")
    assert refused() == 1
    assert b"not allowed" in ascii_wire.ask(b"ms k 1\r\nv\r\n")  # meta
    assert b"not allowed" in ascii_wire.ask(b"flush_all\r\n")
    assert refused() == 3
    assert ascii_wire.ask(b"get k\r\n") == b"END\r\n"  # reads are not refusals
    assert refused() == 3
    ascii_wire.close()
    binary = Binary(cache.endpoint)
    binary.sasl(cache.username, cache.password)
    assert binary.call(SET, b"k", store_extras(), b"v").status == AUTH_ERROR
    assert binary.call(FLUSH, b"").status == AUTH_ERROR
    assert refused() == 5


def _engine(dataplane: Any, cache_id: str) -> Any:
    engine = dataplane.peek_engine(dataplane.caches[cache_id])
    assert engine is not None
    return engine
