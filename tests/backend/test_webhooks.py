"""The alert webhook sender against real HTTP receivers on loopback: retries with backoff
and the same delivery id, giving up and going on, a bounded queue, the SSRF guard, and a
dead receiver never blocking ``submit``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest

from backend.egress import EgressPolicy
from backend.webhooks import Webhooks, describe

LOOPBACK_OK = EgressPolicy(allow_internal=True)


class Receiver:
    """HTTP/1.1 on 127.0.0.1 (asyncio streams, in the test's loop) recording each POST;
    ``status_for(n)`` answers the n-th (from 0), ``None`` never answers."""

    def __init__(self, status_for: Callable[[int], int | None] = lambda n: 200) -> None:
        self.status_for = status_for
        self.bodies: list[dict] = []
        self.deliveries: list[str] = []
        self.times: list[float] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> Receiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook?token=t0k"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
                )
                headers = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(headers["content-length"]))
                n = len(self.bodies)
                self.bodies.append(json.loads(body))
                self.deliveries.append(headers["x-cachier-delivery"])
                self.times.append(time.monotonic())
                status = self.status_for(n)
                if status is None:
                    await asyncio.sleep(3600)
                writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def test_a_failed_post_is_retried_with_backoff_and_the_same_delivery_id() -> None:
    async def main() -> None:
        receiver = await Receiver(lambda n: 500 if n < 2 else 200).start()
        hooks = Webhooks(LOOPBACK_OK, backoff_s=0.05)
        await hooks.start()
        hooks.submit(receiver.url, {"alert": "memory", "status": "firing"})
        hooks.submit(receiver.url, {"alert": "memory", "status": "resolved"})
        await wait_until(lambda: hooks.stats(receiver.url)["delivered"] == 2)
        assert [b["status"] for b in receiver.bodies] == ["firing"] * 3 + ["resolved"]
        assert len(set(receiver.deliveries[:3])) == 1  # one notification, three attempts
        assert receiver.deliveries[3] != receiver.deliveries[0]
        first, second, third = receiver.times[:3]
        assert second - first >= 0.05 and third - second >= 0.1  # exponential
        assert hooks.stats(receiver.url) == {
            "delivered": 2,
            "dropped": 0,
            "failed_attempts": 2,
            "queued": 0,
        }
        await hooks.stop()
        await receiver.stop()

    asyncio.run(main())


def test_a_notification_is_given_up_after_its_retries_and_the_next_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        receiver = await Receiver(lambda n: 503 if n < 3 else 200).start()
        hooks = Webhooks(LOOPBACK_OK, retries=2, backoff_s=0.01)
        await hooks.start()
        hooks.submit(receiver.url, {"n": 1})
        hooks.submit(receiver.url, {"n": 2})
        await wait_until(lambda: hooks.stats(receiver.url)["delivered"] == 1)
        assert [b["n"] for b in receiver.bodies] == [1, 1, 1, 2]
        assert hooks.stats(receiver.url)["dropped"] == 1
        await hooks.stop()
        await receiver.stop()

    asyncio.run(main())
    assert "notification dropped after 3 attempts" in caplog.text
    assert "t0k" not in caplog.text and "/hook" not in caplog.text  # never the URL's secrets


def test_a_hung_receiver_never_blocks_submit_and_the_queue_is_bounded() -> None:
    async def main() -> None:
        receiver = await Receiver(lambda n: None).start()
        hooks = Webhooks(LOOPBACK_OK, queue_max=5, timeout_s=0.2, retries=0)
        await hooks.start()
        start = time.perf_counter()
        for n in range(1000):
            hooks.submit(receiver.url, {"n": n})
        assert time.perf_counter() - start < 0.5  # appends only
        stats = hooks.stats(receiver.url)
        assert stats["queued"] == 5 and stats["dropped"] == 995
        await hooks.stop()  # bounded: gives up on what is left
        assert hooks.stats(receiver.url)["queued"] == 0
        await receiver.stop()

    asyncio.run(main())


def test_the_egress_guard_refuses_loopback_without_the_flag() -> None:
    async def main() -> None:
        receiver = await Receiver().start()
        hooks = Webhooks(EgressPolicy(), retries=1, backoff_s=0.01)
        await hooks.start()
        hooks.submit(receiver.url, {"n": 1})
        await wait_until(lambda: hooks.stats(receiver.url)["dropped"] == 1)
        assert receiver.bodies == []  # never connected
        await hooks.stop()
        await receiver.stop()

    asyncio.run(main())


def test_describe_names_scheme_host_and_port_only() -> None:
    assert describe("https://u:pw@hooks.example.com:8443/x?token=s") == (
        "https://hooks.example.com:8443"
    )
