"""Two loops: the control thread, events crossing to the serving loop in order, and a slow
API request that no longer stalls memcache traffic (``backend.loops``)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from backend.events import CapabilitiesChanged, EventBus, ProxyFaultSet
from backend.loops import SWITCH_INTERVAL_S, ControlThread
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config


@pytest.fixture
def control_thread() -> Iterator[ControlThread]:
    thread = ControlThread("test-control")
    thread.start()
    yield thread
    thread.stop()


# -- the helper ------------------------------------------------------------------------------
def test_the_control_thread_runs_work_on_its_own_loop(control_thread: ControlThread) -> None:
    async def where() -> tuple[int, asyncio.AbstractEventLoop]:
        return threading.get_ident(), asyncio.get_running_loop()

    ident, loop = control_thread.submit(where()).result(5)
    assert ident != threading.get_ident()
    assert loop is control_thread.loop


def test_errors_of_work_on_the_control_thread_reach_the_caller(
    control_thread: ControlThread,
) -> None:
    def refuse() -> None:
        raise ValueError("port taken")

    async def caller() -> None:
        await control_thread.call(refuse)

    with pytest.raises(ValueError, match="port taken"):
        asyncio.run(caller())
    assert control_thread.running  # one failed call does not end the thread


def test_a_loop_that_cannot_start_raises_from_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> asyncio.AbstractEventLoop:
        raise OSError("no more file descriptors")

    monkeypatch.setattr(asyncio, "new_event_loop", broken)
    thread = ControlThread()
    with pytest.raises(OSError, match="file descriptors"):
        thread.start()
    assert not thread.running


def test_stop_cancels_what_still_runs_and_joins() -> None:
    thread = ControlThread()
    thread.start()
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    thread.submit(forever())
    time.sleep(0.05)
    started = time.monotonic()
    thread.stop()
    assert cancelled.is_set() and not thread.running
    assert time.monotonic() - started < 2
    thread.stop()  # idempotent


# -- events crossing threads -----------------------------------------------------------------
def test_events_from_another_thread_arrive_on_the_subscribers_loop_in_order(
    control_thread: ControlThread,
) -> None:
    bus = EventBus()
    seen: list[tuple[int, bool]] = []  # (n, delivered on the serving loop's thread)

    async def serving() -> None:
        serving_thread = threading.get_ident()
        bus.subscribe(
            CapabilitiesChanged,
            lambda e: seen.append((int(e.username), threading.get_ident() == serving_thread)),
            asyncio.get_running_loop(),
        )

        def publish_all() -> None:
            for n in range(2000):
                bus.publish(CapabilitiesChanged("c", str(n), n % 2 == 0, True))

        await control_thread.call(publish_all)
        # Everything published before ``call`` returned was queued before its answer.
        assert len(seen) == 2000

    asyncio.run(serving())
    assert [n for n, _ in seen] == list(range(2000))
    assert all(on_serving_thread for _, on_serving_thread in seen)


def test_delivered_waits_until_the_other_loop_has_applied_the_events(
    control_thread: ControlThread,
) -> None:
    bus = EventBus()
    applied: list[str] = []

    async def serving() -> None:
        bus.subscribe(
            ProxyFaultSet, lambda e: applied.append(e.hostname), asyncio.get_running_loop()
        )
        stop = asyncio.Event()

        async def control_side() -> list[str]:
            bus.publish(ProxyFaultSet("proxy-1", "slow", 5))
            await bus.delivered()  # what the API awaits before answering a change
            return list(applied)

        seen_after = await asyncio.wrap_future(control_thread.submit(control_side()))
        stop.set()
        assert seen_after == ["proxy-1"]

    asyncio.run(serving())


def test_a_capability_change_reaches_the_serving_loop_well_under_a_millisecond(
    control_thread: ControlThread,
) -> None:
    """The delay between publishing (control thread) and applying (serving loop), idle."""
    bus = EventBus()
    delays: list[float] = []

    async def serving() -> None:
        sent: dict[str, float] = {}
        bus.subscribe(
            CapabilitiesChanged,
            lambda e: delays.append(time.perf_counter() - sent[e.username]),
            asyncio.get_running_loop(),
        )

        def publish(n: int) -> None:
            sent[str(n)] = time.perf_counter()
            bus.publish(CapabilitiesChanged("c", str(n), False, False))

        for n in range(200):
            control_thread.loop.call_soon_threadsafe(publish, n)
            await asyncio.sleep(0.002)
        await asyncio.sleep(0.05)

    asyncio.run(serving())
    delays.sort()
    median, p99 = delays[len(delays) // 2], delays[int(len(delays) * 0.99)]
    print(
        f"\nevent delivery control -> serving loop: median {median * 1e6:.0f} µs, "
        f"p99 {p99 * 1e6:.0f} µs"
    )
    assert len(delays) == 200
    assert median < 0.005  # ~50-150 µs idle; generous for a loaded 2-core CI machine


# -- a slow API request does not stall memcache ----------------------------------------------
@pytest.fixture
def own_service(tmp_path: Path) -> Iterator[RunningService]:
    running = RunningService(make_config(tmp_path, probe_interval=5.0)).start()
    yield running
    running.stop()


def measure_gets(cache: CacheHandle, during: Callable[[], float]) -> tuple[float, list[float]]:
    """Latencies of a ``get`` every 2 ms on a live connection while ``during`` runs;
    returns what ``during`` returned (its own duration) and the latencies."""
    wire = Wire.authenticated(cache)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    latencies: list[float] = []
    done = threading.Event()

    def client() -> None:
        while not done.is_set():
            started = time.perf_counter()
            wire.send(b"get k\r\n")
            wire.read_until(b"END\r\n")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.002)

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.1)
        duration = during()
        time.sleep(0.1)
    finally:
        done.set()
        thread.join(5)
        wire.close()
    return duration, latencies


def test_a_slow_database_call_in_a_request_does_not_stall_memcache(
    own_service: RunningService,
) -> None:
    """A blocking 300 ms repository call (a PostgreSQL round trip, a slow disk) in an API
    request held the serving loop for all of it when both planes shared one loop."""
    cache = CacheHandle(own_service.create_cache("slow-db"))
    control = own_service.service.control
    assert control is not None
    real = control.page_caches

    def slow_list(*args):
        time.sleep(0.3)  # blocking, as a synchronous driver would be
        return real(*args)

    own_service.call_control(setattr, control, "page_caches", slow_list)

    def list_caches() -> float:
        started = time.perf_counter()
        with own_service.admin() as admin:
            assert admin.get("/api/v1/admin/caches").status_code == 200
        return time.perf_counter() - started

    try:
        duration, latencies = measure_gets(cache, list_caches)
    finally:
        own_service.call_control(delattr, control, "page_caches")
    assert duration >= 0.3
    assert len(latencies) > 20
    assert max(latencies) < duration / 2, f"a get waited {max(latencies) * 1e3:.0f} ms"


def test_a_cpu_bound_request_does_not_stall_memcache(own_service: RunningService) -> None:
    """Python work in a request (a huge listing or scrape) shares the GIL with the serving
    loop, which gets it back every switch interval instead of after the request."""
    cache = CacheHandle(own_service.create_cache("busy-api"))
    status_view = own_service.service.status_view
    assert status_view is not None
    real = status_view.metrics

    def slow_metrics() -> list[bytes]:
        deadline = time.perf_counter() + 0.3
        n = 0
        while time.perf_counter() < deadline:  # pure Python, holding the GIL between checks
            n += 1
        return real()

    own_service.call_control(setattr, status_view, "metrics", slow_metrics)

    def scrape() -> float:
        started = time.perf_counter()
        assert httpx.get(own_service.api_url + "/metrics", timeout=10).status_code == 200
        return time.perf_counter() - started

    try:
        duration, latencies = measure_gets(cache, scrape)
    finally:
        own_service.call_control(setattr, status_view, "metrics", real)
    assert duration >= 0.3
    assert len(latencies) > 20
    assert max(latencies) < duration / 2, f"a get waited {max(latencies) * 1e3:.0f} ms"


def test_the_switch_interval_is_lowered_while_the_control_thread_runs() -> None:
    """A serving loop waits for the GIL at most this long while the control thread works."""
    before = sys.getswitchinterval()
    thread = ControlThread()
    thread.start()
    try:
        assert sys.getswitchinterval() == min(before, SWITCH_INTERVAL_S)
    finally:
        thread.stop()
    assert sys.getswitchinterval() == before


def test_a_clients_flush_is_logged_on_the_control_thread(own_service: RunningService) -> None:
    """Data -> control: the serving loop hands the flush over, it never writes the log."""
    cache = CacheHandle(own_service.create_cache("flushed-by-client"))
    control = own_service.service.control
    assert control is not None
    real = control.record_flush
    threads: list[str] = []

    def record_flush(cache_id: str, proxy: str, origin: str) -> None:
        threads.append(threading.current_thread().name)
        real(cache_id, proxy, origin)

    own_service.call_control(setattr, control, "record_flush", record_flush)
    try:
        wire = Wire.authenticated(cache)
        assert wire.ask(b"flush_all\r\n") == b"OK\r\n"
        wire.close()
        deadline = time.monotonic() + 5
        while not threads and time.monotonic() < deadline:  # handed over, not awaited
            time.sleep(0.005)
    finally:
        own_service.call_control(delattr, control, "record_flush")
    assert threads == ["cachier-control"]
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as api:
        lines = [line["message"] for line in api.get("/logs").json()["lines"]]
    assert any("origin: memcache client" in line for line in lines)
