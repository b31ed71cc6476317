"""Brute-force limits per address and per username, and the trust a real login earns."""

from __future__ import annotations

import httpx
import pytest

from backend.throttle import AuthThrottle
from tests.backend.test_auth import FAILURE, auth_line
from tests.backend.wire import Wire
from tests.conftest import CacheHandle, RunningService, make_config

THROTTLED = b"CLIENT_ERROR too many failed authentications, try again later\r\n"


def logs_in(cache: CacheHandle, source: str = "127.0.0.1") -> bool:
    wire = Wire(cache.endpoint, source=source)
    wire.send(auth_line(cache.username, cache.password))
    return wire.read_exactly(8) == b"STORED\r\n"


@pytest.fixture
def guarded(tmp_path) -> RunningService:
    config = make_config(
        tmp_path, auth_failure_limit=3, auth_user_failure_limit=5, auth_failure_window=30
    )
    running = RunningService(config).start()
    yield running
    running.stop()


def metric(running: RunningService, line_start: str) -> float:
    text = httpx.get(running.api_url + "/metrics").text
    (line,) = [line for line in text.splitlines() if line.startswith(line_start)]
    return float(line.rsplit(" ", 1)[1])


def test_an_address_that_knows_the_password_passes_its_full_address_limit(
    guarded: RunningService,
) -> None:
    cache = CacheHandle(guarded.create_cache("behind-nat"))
    assert logs_in(cache, "127.0.0.5")  # the app, before a guesser shares its NAT address
    for _ in range(3):
        wire = Wire(cache.endpoint, source="127.0.0.5")
        wire.send(auth_line("someone-else", "guess"))
        assert wire.read_to_close() == FAILURE
    wire = Wire(cache.endpoint, source="127.0.0.5")
    wire.send(auth_line("someone-else", "guess"))
    assert wire.read_to_close() == THROTTLED  # the address is at its limit ...
    assert logs_in(cache, "127.0.0.5")  # ... but the app logs in as before
    wire = Wire(cache.endpoint, source="127.0.0.5")  # while a newcomer from there waits
    wire.send(auth_line(cache.username + "x", cache.password))
    assert wire.read_to_close() == THROTTLED
    assert metric(guarded, 'cachier_auth_throttled_total{scope="address"}') >= 1
    assert metric(guarded, "cachier_auth_trusted_logins_total") >= 1


def test_one_failure_ends_an_address_trust(guarded: RunningService) -> None:
    cache = CacheHandle(guarded.create_cache("trust-ends"))
    assert logs_in(cache, "127.0.0.7")
    for _ in range(3):
        wire = Wire(cache.endpoint, source="127.0.0.7")
        wire.send(auth_line(cache.username, "wrong"))
        assert wire.read_to_close() == FAILURE
    wire = Wire(cache.endpoint, source="127.0.0.7")
    wire.send(auth_line(cache.username, cache.password))
    assert wire.read_to_close() == THROTTLED


def test_guesses_spread_over_addresses_hit_the_username_limit(guarded: RunningService) -> None:
    cache = CacheHandle(guarded.create_cache("popular"))
    assert logs_in(cache, "127.0.0.20")  # the owner's app, before the attack
    for i in range(5):  # one guess from each of five addresses: no address limit is reached
        wire = Wire(cache.endpoint, source=f"127.0.1.{i + 1}")
        wire.send(auth_line(cache.username, f"guess-{i}"))
        assert wire.read_to_close() == FAILURE
    wire = Wire(cache.endpoint, source="127.0.1.99")  # a sixth address, even right, waits
    wire.send(auth_line(cache.username, cache.password))
    assert wire.read_to_close() == THROTTLED
    assert logs_in(cache, "127.0.0.20")  # the owner's app is not locked out
    assert metric(guarded, 'cachier_auth_throttled_total{scope="username"}') >= 1


def test_unknown_usernames_are_limited_like_known_ones(guarded: RunningService) -> None:
    cache = CacheHandle(guarded.create_cache("bystander"))
    for i in range(5):
        wire = Wire(cache.endpoint, source=f"127.0.2.{i + 1}")
        wire.send(auth_line("NOSUCHUSER", "guess"))
        assert wire.read_to_close() == FAILURE
    wire = Wire(cache.endpoint, source="127.0.2.99")
    wire.send(auth_line("NOSUCHUSER", "guess"))
    assert wire.read_to_close() == THROTTLED  # same answer as for a real username


def test_the_tables_stay_bounded_under_rotating_addresses_and_usernames() -> None:
    throttle = AuthThrottle(limit=3, user_limit=3, max_entries=100)
    for i in range(10_000):
        throttle.record_failure(f"10.0.{i // 256}.{i % 256}", f"user-{i}")
        throttle.record_success(f"10.1.{i // 256}.{i % 256}", f"user-{i}")
    assert len(throttle.by_address) <= 100 and len(throttle.by_username) <= 100
    assert len(throttle._trusted) <= 100
