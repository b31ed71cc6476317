"""Log drains cannot be aimed at the service's own network (server-side request forgery)."""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import pytest

from backend.control.drains import DrainLine, LogDrains
from backend.egress import EgressPolicy
from tests.backend.test_log_drain import Receiver
from tests.conftest import CacheHandle, RunningService, make_config

STRICT, INTERNAL = EgressPolicy(), EgressPolicy(allow_internal=True)


@pytest.mark.parametrize(
    ("address", "strict", "internal"),
    [
        ("93.184.215.14", True, True),
        ("2606:4700::6810:85e5", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),  # carrier-grade NAT: not global
        ("fd00::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # IPv4-mapped loopback
        ("169.254.169.254", False, False),  # cloud metadata: never
        ("fe80::1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("240.0.0.1", False, False),
    ],
)
def test_the_policy_admits_only_what_it_should(address: str, strict: bool, internal: bool) -> None:
    ip = ipaddress.ip_address(address)
    assert (STRICT.refusal(ip) is None) is strict
    assert (INTERNAL.refusal(ip) is None) is internal


@pytest.fixture(scope="module")
def strict_service(tmp_path_factory: pytest.TempPathFactory):
    config = make_config(tmp_path_factory.mktemp("strict"), allow_internal_drains=False)
    running = RunningService(config).start()
    yield running
    running.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{api_port}/api/v1/admin/caches",
        "http://localhost:{api_port}/healthz",
        "http://user:pw@169.254.169.254/latest/meta-data/?token=x",
        "http://[::1]:{api_port}/",
        "http://[::ffff:127.0.0.1]:{api_port}/",
        "https://10.0.0.5/drain",
        "http://192.168.1.1:8080/drain",
        "http://0.0.0.0:{api_port}/",
        "https://no-such-host.invalid/drain",
    ],
)
def test_a_drain_to_an_internal_address_is_refused_and_not_stored(
    strict_service: RunningService, url: str
) -> None:
    cache = CacheHandle(strict_service.create_cache(f"ssrf-{abs(hash(url)) % 10**8}"))
    url = url.format(api_port=httpx.URL(strict_service.api_url).port)
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as client:
        response = client.put("/app/log-drain", json={"url": url})
        assert response.status_code == 422, response.text
        assert "log drain cannot be used" in response.json()["error"]
        assert client.get("/app").json()["log_drain"] is None


def test_the_operator_flag_admits_loopback_but_never_link_local(cache: CacheHandle) -> None:
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as client:
        ok = client.put("/app/log-drain", json={"url": "http://127.0.0.1:9/drain"})
        assert ok.status_code == 200
        metadata = client.put("/app/log-drain", json={"url": "http://169.254.169.254/x"})
        assert metadata.status_code == 422
        assert client.get("/app").json()["log_drain"] == "http://127.0.0.1:9/drain"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_never_connects_to_a_refused_address(host: str) -> None:
    """A drain stored before (or resolving elsewhere since) is checked at every connection:
    the receiver listening on loopback never sees a request."""

    async def main() -> None:
        async with Receiver() as receiver:
            url = receiver.url().replace("127.0.0.1", host)
            drains = LogDrains(retries=1, backoff_s=0.01, egress=STRICT)
            await drains.start()
            drains.submit(url, DrainLine("2026-11-27T00:00:00Z", "cachier", "m", "app"))
            for _ in range(100):
                if drains.stats[url]["dropped"]:
                    break
                await asyncio.sleep(0.02)
            await drains.stop()
            assert receiver.requests == []
            assert drains.stats[url]["failed_attempts"] == 2
            assert drains.stats[url]["dropped"] == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    "url",
    ["http://h:abc/", "http://h:99999/", "http://h:0/", "http://[::1/", "http://[zz]/drain"],
)
def test_a_malformed_drain_url_is_a_422_not_a_server_error(cache: CacheHandle, url: str) -> None:
    """Found by schemathesis: urlsplit and .port raise ValueError on these, and the route
    answered 500."""
    with httpx.Client(base_url=cache.dashboard_api, timeout=10) as client:
        response = client.put("/app/log-drain", json={"url": url})
        assert response.status_code == 422, response.text
        assert "log drain URL" in response.json()["error"]
        assert client.get("/app").json()["log_drain"] is None
