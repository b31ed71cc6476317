"""The collector's policy (``backend.gcpolicy``): full collections walk only what is new,
and freezing what survives leaks nothing.

Freezing trades a bound on every pause for one risk: a cycle among frozen objects that
becomes garbage is never found until a thaw. These tests churn a running service
(caches created and deleted, memcache and HTTP connections opened and closed) with a
sweep after every step, so whatever is alive at any moment is frozen, then thaw and look
at what was unreachable; and they time a sweep against a full collection of the same
objects unfrozen.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import weakref
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from backend import gcpolicy
from backend.engine import Mode
from backend.store import LruEngine
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config

uvloop = pytest.importorskip("uvloop")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The service on uvloop, as the CLI runs it (both loops: they come from the policy).
    On asyncio's own loop the CLI does not freeze (``cli._tune_gc``)."""
    policy = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        running = RunningService(make_config(tmp_path_factory.mktemp("data"))).start()
    finally:
        asyncio.set_event_loop_policy(policy)
    yield running
    running.stop()


@pytest.fixture
def cache(service: RunningService) -> CacheHandle:
    return CacheHandle(service.create_cache("kept"))


@pytest.fixture
def collector() -> Iterator[gcpolicy.Collector]:
    """The policy as the CLI installs it, undone afterwards (the test process goes on)."""
    threshold = gc.get_threshold()
    gc.collect()
    hook = gcpolicy.install()
    try:
        yield hook
    finally:
        gc.callbacks.remove(hook)
        gc.set_threshold(*threshold)
        gc.unfreeze()
        gc.collect()


def unreachable_after_thaw() -> Counter[str]:
    """Unfreeze and collect everything once: the unreachable objects by type module and
    name (what freezing would have kept until a thaw), then freed."""
    gc.collect(2)  # garbage that is not frozen: the collector finds that anyway
    gc.unfreeze()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect(2)
        kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect(2)
    return kinds


def churn_round(service: RunningService, admin: httpx.Client, keep: CacheHandle, i: int) -> None:
    """One cache created, used and deleted; connections opened and closed; the API read on
    a new HTTP connection. A sweep after each step freezes whatever is alive then."""
    made = service.create_cache(f"churn-{i}", plan="free")
    gc.collect(2)
    handle = CacheHandle(made)
    wire = Wire.authenticated(handle)
    assert wire.ask(b"set k 0 0 1\r\nv\r\n") == b"STORED\r\n"
    gc.collect(2)
    wire.close()
    for _ in range(3):
        other = Wire.authenticated(keep)
        assert other.ask(b"get k\r\n") == b"END\r\n"
        gc.collect(2)
        other.close()
    half = Wire(keep.endpoint)  # a connection that never logs in
    half.send(b"set ")
    gc.collect(2)
    half.sock.close()
    with httpx.Client(base_url=service.api_url, timeout=10) as fresh:
        assert fresh.get("/metrics").status_code == 200
        gc.collect(2)
        assert fresh.get(f"{handle.dashboard_api}/stats").status_code == 200
    assert admin.get("/api/v1/admin/caches?limit=20").status_code == 200
    assert admin.delete(f"/api/v1/admin/caches/{made['id']}").status_code == 204
    gc.collect(2)


def backend_kinds(kinds: Counter[str]) -> dict[str, int]:
    return {k: n for k, n in kinds.items() if k.startswith(("backend.", "tests."))}


def test_churn_under_freezing_leaves_nothing_unreachable_and_memory_flat(
    service: RunningService, cache: CacheHandle, collector: gcpolicy.Collector
) -> None:
    with service.admin() as admin:
        for i in range(10):  # warm-up: first-use caches, lazily built routes, pools
            churn_round(service, admin, cache, i)
        time.sleep(0.5)  # connections closed on the server side too
        unreachable_after_thaw()
        gc.freeze()
        blocks = sys.getallocatedblocks()
        full = collector.full
        rounds = 60
        for i in range(10, 10 + rounds):
            churn_round(service, admin, cache, i)
        time.sleep(0.5)
    assert collector.full - full >= rounds * 8  # every sweep froze what was alive
    kinds = unreachable_after_thaw()
    # Nothing of the service's is among it: no cache, engine, track, session or codec.
    assert backend_kinds(kinds) == {}
    # What the rest (asyncio, uvicorn, httpx on the test's side) left is small, not
    # a per-round amount (each round froze a request, a connection and a cache mid-use).
    assert sum(kinds.values()) < 5 * rounds, kinds.most_common(10)
    grown = sys.getallocatedblocks() - blocks
    assert grown < 300 * rounds, f"{grown} blocks more after {rounds} rounds"


def test_a_frozen_cycle_lives_until_the_thaw(collector: gcpolicy.Collector) -> None:
    """What the thaw is for: a cycle that was alive at a sweep survives its death."""

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    ref = weakref.ref(a)
    collector.sweep()
    del a, b
    collector.sweep()
    assert ref() is not None  # frozen: no full collection walks it
    assert collector.thaw() >= 2
    assert ref() is None


def test_a_sweep_does_not_walk_what_it_froze() -> None:
    """200 000 stored items: a full collection walks them all; with the policy the next
    sweep walks only what is new, whatever the items held."""
    threshold = gc.get_threshold()
    engine = LruEngine("c", 1 << 40)
    for i in range(200_000):
        engine.store(Mode.SET, b"k%d" % i, b"v", 0, 0)
    pauses: dict[str, list[float]] = {"unfrozen": [], "swept": []}
    hook = gcpolicy.Collector()
    try:
        for _ in range(3):
            gc.unfreeze()
            started = time.perf_counter()
            gc.collect(2)
            pauses["unfrozen"].append(time.perf_counter() - started)
            gc.set_threshold(*threshold)
            gc.callbacks.append(hook)
            hook.sweep()  # freezes the items (and everything else)
            started = time.perf_counter()
            hook.sweep()
            pauses["swept"].append(time.perf_counter() - started)
            gc.callbacks.remove(hook)
            assert len(gc.get_objects()) < 1_000  # the items are not tracked any more
    finally:
        if hook in gc.callbacks:
            gc.callbacks.remove(hook)
        gc.unfreeze()
        gc.set_threshold(*threshold)
    unfrozen, swept = min(pauses["unfrozen"]), min(pauses["swept"])
    print(f"full collection {unfrozen * 1000:.1f} ms, sweep {swept * 1000:.2f} ms")
    assert swept < unfrozen / 10


def test_run_sweeps_and_thaws_only_once_the_process_grew(collector: gcpolicy.Collector) -> None:
    """A steady process never pauses for a thaw; one that grew by a quarter since the last
    thaw (or since it shrank) thaws at the next check, once."""
    collector.sweep_every_s, collector.thaw_every_s = 0.01, 0.05
    size = [1000]
    collector.size = lambda: size[0]
    collector.thawed_at_size = 1000
    full = collector.full

    async def until(thawed: int) -> None:
        deadline = time.monotonic() + 10  # a thaw walks all of pytest's objects too
        while collector.thawed < thawed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def scenario() -> list[int]:
        task = asyncio.create_task(collector.run())
        seen = []
        await asyncio.sleep(0.3)  # six checks at a steady size
        seen.append(collector.thawed)
        size[0] = 1240  # grew, but not by a quarter
        await asyncio.sleep(0.2)
        seen.append(collector.thawed)
        size[0] = 1260
        await until(1)
        await asyncio.sleep(0.2)  # the mark moved to 1260: no second thaw
        seen.append(collector.thawed)
        size[0] = 900  # shrank: the mark follows it down
        await asyncio.sleep(0.2)
        size[0] = 1130  # a quarter above 900
        await until(2)
        seen.append(collector.thawed)
        task.cancel()
        return seen

    assert asyncio.run(scenario()) == [0, 0, 1, 2]
    assert collector.full - full >= 20  # sweeps all along (each thaw is two collections)


def test_without_freezing_nothing_is_hooked_and_run_returns() -> None:
    threshold = gc.get_threshold()
    try:
        collector = gcpolicy.install(freeze=False)
        assert collector not in gc.callbacks
        assert gc.get_threshold() == (
            gcpolicy.GC_YOUNG,
            gcpolicy.GC_MIDDLE,
            gcpolicy.GC_OLD_UNFROZEN,
        )
        asyncio.run(asyncio.wait_for(collector.run(), 1))  # no sweeps: returns at once
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
