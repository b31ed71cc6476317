"""Hot keys, key prefixes, largest values and per-command hits, against the real backend
with real clients; and the sketch's guarantee, by property."""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend import dataplane as dataplane_module
from backend.keyactivity import KEYS, SAMPLE_EVERY, WEIGHT, SpaceSaving
from tests.backend.test_auth import pymemcache_client
from tests.conftest import CacheHandle, RunningService, make_config


def keys_view(cache: CacheHandle, **params: str) -> dict:
    answer = httpx.get(f"{cache.dashboard_api}/keys", params=params, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_tracking(cache: CacheHandle, **params: str) -> dict:
    deadline = time.monotonic() + 5
    while not (view := keys_view(cache, **params))["tracking"]:
        assert time.monotonic() < deadline, "tracking never started"
        time.sleep(0.02)
    return view


def by_key(rows: list[dict]) -> dict[str, dict]:
    return {row["key"]: row for row in rows}


def test_the_keys_view_ranks_keys_and_prefixes_the_clients_hit(
    service: RunningService, cache: CacheHandle
) -> None:
    assert keys_view(cache)["keys"] == []  # asking starts it: nothing counted before
    wait_tracking(cache)
    client = pymemcache_client(cache)
    try:
        client.set("user:1", b"x" * 100, noreply=False)
        client.set("user:2", b"x" * 10, noreply=False)
        client.set("session:big", b"x" * 50_000, noreply=False)
        client.set("plain", b"x", noreply=False)
        for _ in range(400):
            client.get("user:1")
        for _ in range(100):
            client.get("user:2")
        for _ in range(200):
            client.get("nope:missing")
        client.delete("user:2", noreply=False)
    finally:
        client.close()
    view = keys_view(cache)
    keys = by_key(view["keys"])
    assert view["keys"][0]["key"] == "user:1"
    assert abs(keys["user:1"]["gets"] - 400) <= SAMPLE_EVERY
    assert keys["user:1"]["hits"] == keys["user:1"]["gets"]
    assert abs(keys["nope:missing"]["gets"] - 200) <= SAMPLE_EVERY
    assert keys["nope:missing"]["hits"] == 0
    prefixes = by_key(view["prefixes"])
    assert [p["key"] for p in view["prefixes"][:2]] == ["user:", "nope:"]
    assert abs(prefixes["user:"]["gets"] - 500) <= 2 * SAMPLE_EVERY
    assert abs(prefixes["user:"]["hits"] - 500) <= 2 * SAMPLE_EVERY
    assert prefixes["nope:"]["hits"] == 0
    commands = {c["command"]: c for c in view["commands"]}
    assert (commands["get"]["hits"], commands["get"]["misses"]) == (500, 200)  # exact
    assert (commands["delete"]["hits"], commands["delete"]["misses"]) == (1, 0)
    assert view["sample_every"] == SAMPLE_EVERY and view["window_s"] > 0


def test_every_set_is_seen_by_the_largest_values_when_sampled_enough(
    service: RunningService, cache: CacheHandle
) -> None:
    wait_tracking(cache)
    client = pymemcache_client(cache)
    try:
        count = 10 * SAMPLE_EVERY  # ten of them sampled
        for size in range(1, count + 1):
            client.set(f"blob:{size}", b"x" * size * 1000, noreply=False)
    finally:
        client.close()
    largest = keys_view(cache)["largest"]
    sizes = [row["size"] for row in largest]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 10
    assert sizes[0] > (count - SAMPLE_EVERY) * 1000  # one of the largest was sampled
    assert all(row["key"].startswith("blob:") for row in largest)


def test_a_separator_of_the_owners_choice_makes_the_prefixes(
    service: RunningService, cache: CacheHandle
) -> None:
    wait_tracking(cache, separator="/")
    client = pymemcache_client(cache)
    try:
        for i in range(40):
            client.get(f"img/{i}")
    finally:
        client.close()
    prefixes = [p["key"] for p in keys_view(cache, separator="/")["prefixes"]]
    assert prefixes == ["img/"]


@pytest.mark.parametrize("separator", ["", "ab", " ", "%7F", "é"])
def test_a_bad_separator_is_a_422(cache: CacheHandle, separator: str) -> None:
    answer = httpx.get(f"{cache.dashboard_api}/keys?separator={separator}", timeout=5)
    assert answer.status_code == 422, answer.text


def test_keys_stay_with_their_owner(service: RunningService) -> None:
    """Keys are the owner's data: another cache's view, the operator's list and the
    metrics never show them."""
    mine = CacheHandle(service.create_cache("keys-mine"))
    other = CacheHandle(service.create_cache("keys-other"))
    wait_tracking(mine)
    wait_tracking(other)
    client = pymemcache_client(mine)
    try:
        for _ in range(20):
            client.get("secret-customer-42")
    finally:
        client.close()
    assert any(k["key"] == "secret-customer-42" for k in keys_view(mine)["keys"])
    assert keys_view(other)["keys"] == []
    with service.admin() as operator:
        listing = operator.get("/api/v1/admin/caches").text
        audit = operator.get("/api/v1/admin/audit").text
    metrics = httpx.get(f"{service.api_url}/metrics", timeout=5).text
    for text in (listing, audit, metrics):
        assert "secret-customer-42" not in text


def test_tracking_stops_when_nobody_asks(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(dataplane_module, "TRACK_FOR_S", 0.3)
    running = RunningService(make_config(tmp_path)).start()
    try:
        cache = CacheHandle(running.create_cache("expiring"))
        wait_tracking(cache)
        time.sleep(0.6)
        engine = running.service.dataplane.peek_engine(
            running.service.dataplane.caches[cache.info["id"]]
        )
        assert engine is not None and engine.key_activity is None  # the hot path is free
        assert wait_tracking(cache)["keys"] == []  # asking again restarts it, afresh
    finally:
        running.stop()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=3000))
def test_space_saving_keeps_every_heavy_key_with_bounded_error(stream: list[int]) -> None:
    sketch = SpaceSaving(KEYS)
    for key in stream:
        sketch.entry(str(key).encode())
    truth = Counter(str(k).encode() for k in stream)
    assert len(sketch.entries) <= KEYS
    for key, entry in sketch.entries.items():
        estimate, error = entry[WEIGHT], entry[1]
        assert estimate - error <= truth[key] <= estimate
    for key, count in truth.items():
        if count > len(stream) / KEYS:
            assert key in sketch.entries, (key, count)
