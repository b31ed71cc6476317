"""A full cache costs about what its plan says, whatever the size of its values."""

from __future__ import annotations

import gc
from pathlib import Path

from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_full_free_cache_of_tiny_values_costs_at_most_one_and_a_half_plans(tmp_path) -> None:
    running = RunningService(make_config(tmp_path)).start()
    try:
        cache = CacheHandle(running.create_cache("tiny-values", plan="free"))
        limit = cache.info["memory_limit"]
        wire = Wire.authenticated(cache)
        gc.collect()
        before = rss_bytes()
        count = limit // (12 + 10 + 50) * 2  # twice what memcached's accounting would hold
        for start in range(0, count, 1000):
            wire.send(
                b"".join(
                    b"set k:%010d 0 0 10 noreply\r\n0123456789\r\n" % i
                    for i in range(start, min(start + 1000, count))
                )
            )
        wire.send(b"mn\r\n")
        assert wire.read_exactly(4) == b"MN\r\n"
        grown = rss_bytes() - before
        with running.admin() as admin:
            usage = admin.get(f"/api/v1/admin/caches/{cache.info['id']}").json()["usage"]
    finally:
        running.stop()
    assert usage["memory_used"] <= limit  # full ...
    assert usage["memory_used"] > limit * 0.99
    assert grown <= 1.5 * limit, f"{grown / 1e6:.1f} MB for a {limit / 1e6:.1f} MB plan"
