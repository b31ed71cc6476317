"""The plan's memory limit: least recently used items are evicted and counted."""

from __future__ import annotations

from tests.backend.test_ascii_commands import parse_stats
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService

VALUE = b"v" * 1000 * 1000  # 1 MB values: a 25 MiB free cache holds about 26


def test_lru_eviction_at_the_plan_limit(service: RunningService) -> None:
    cache = CacheHandle(service.create_cache("small", plan="free"))
    wire = Wire.authenticated(cache)
    for i in range(10):
        wire.send(b"set key%d 0 0 %d noreply\r\n" % (i, len(VALUE)) + VALUE + b"\r\n")
    assert wire.ask(b"get key0\r\n").startswith(b"VALUE key0")  # key0 is now recently used
    for i in range(10, 40):
        wire.send(b"set key%d 0 0 %d noreply\r\n" % (i, len(VALUE)) + VALUE + b"\r\n")
    stats = parse_stats(wire.ask(b"stats\r\n"))
    assert int(stats["bytes"]) <= int(stats["limit_maxbytes"]) == 25 * 1024 * 1024
    evicted = int(stats["evictions"])
    assert evicted == 40 - int(stats["curr_items"]) > 0
    assert wire.ask(b"get key1\r\n") == b"END\r\n"  # the oldest untouched item went first
    assert wire.ask(b"mg key39 s\r\n") == b"HD s1000000\r\n"
    survivors = [i for i in range(40) if wire.ask(b"mg key%d\r\n" % i) == b"HD\r\n"]
    assert survivors == list(range(40 - len(survivors), 40))  # a contiguous newest run
    wire.close()


def test_evictions_in_one_cache_never_touch_another(service: RunningService) -> None:
    bystander = CacheHandle(service.create_cache("bystander", plan="free"))
    quiet = Wire.authenticated(bystander)
    assert quiet.ask(b"set precious 0 0 3\r\nyes\r\n") == b"STORED\r\n"
    noisy = Wire.authenticated(CacheHandle(service.create_cache("noisy", plan="free")))
    for i in range(40):
        noisy.send(b"set key%d 0 0 %d noreply\r\n" % (i, len(VALUE)) + VALUE + b"\r\n")
    assert int(parse_stats(noisy.ask(b"stats\r\n"))["evictions"]) > 0
    assert quiet.ask(b"get precious\r\n") == b"VALUE precious 0 3\r\nyes\r\nEND\r\n"
    assert parse_stats(quiet.ask(b"stats\r\n"))["evictions"] == "0"
