"""Log drains against a real HTTP receiver on loopback: wire format, batching, retries, drops.

The receiver is a few lines of HTTP/1.1 on ``asyncio.start_server`` in the test's own loop, so
the tests see exactly the bytes a Logplex-compatible receiver would get, with no mocks of httpx.
"""

from __future__ import annotations

import asyncio
import base64
import http
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from backend.control.drains import DrainLine, LogDrains, drain_token, syslog_frame
from backend.egress import EgressPolicy

T = "2026-11-26T13:12:47.248Z"
TOKEN_PATTERN = re.compile(r"^d\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
FRAME_ID_PATTERN = re.compile(r"^[0-9A-F]{32}$")


# The receivers here listen on loopback, which only --allow-internal-drains admits.
LOOPBACK_OK = EgressPolicy(allow_internal=True)


def line(message: str, app: str = "my-cache", source: str = "cachier") -> DrainLine:
    return DrainLine(t=T, source=source, message=message, app=app)


# -- a receiver ---------------------------------------------------------------------------
@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes


class Receiver:
    """A minimal HTTP/1.1 server on 127.0.0.1 that records every request.

    Keep-alive and Content-Length bodies only (what httpx sends). ``status_for(n)`` answers the
    n-th request (from 0); ``None`` means never answer, to simulate a hung drain.
    """

    def __init__(self, status_for: Callable[[int], int | None] = lambda n: 200) -> None:
        self.status_for = status_for
        self.requests: list[Request] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    def url(self, path: str = "/logs", userinfo: str = "") -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{userinfo}127.0.0.1:{port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await self._read(reader)
                n = len(self.requests)
                self.requests.append(request)
                status = self.status_for(n)
                if status is None:
                    await asyncio.Event().wait()
                phrase = http.HTTPStatus(status).phrase
                writer.write(f"HTTP/1.1 {status} {phrase}\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> Request:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *header_lines = head.rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for header in header_lines:
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(method, target, headers, body)


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/logs"


# -- parsing what was received ------------------------------------------------------------
def split_frames(body: bytes) -> list[bytes]:
    """Split an application/logplex-1 body by its octet counts; it must end exactly."""
    frames, i = [], 0
    while i < len(body):
        space = body.index(b" ", i)
        length = int(body[i:space])
        frames.append(body[space + 1 : space + 1 + length])
        i = space + 1 + length
    assert i == len(body)
    return frames


@dataclass
class Message:
    pri: str
    version: str
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    msg: str


def parse(frame: bytes) -> Message:
    """Split a frame as Heroku drain parsers do: seven header fields, then the message."""
    text = frame.decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, text
    head, _, rest = text[:-1].partition(" ")
    match = re.fullmatch(r"<(\d{1,3})>(\d)", head)
    assert match, head
    fields = rest.split(" ", 5)
    assert len(fields) == 6, rest
    return Message(match[1], match[2], *fields)


def received_messages(receiver: Receiver) -> list[Message]:
    return [parse(frame) for r in receiver.requests for frame in split_frames(r.body)]


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A LogDrains that makes its own client honours proxy variables; loopback must not."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


# -- the frame ----------------------------------------------------------------------------
def test_frame_is_octet_counted_rfc5424() -> None:
    frame = syslog_frame(line("flushed from web interface on proxy-1"))
    msg = b"<190>1 2026-11-26T13:12:47.248Z my-cache cachier cachier - "
    msg += b"flushed from web interface on proxy-1\n"
    assert frame == b"%d %s" % (len(msg), msg)


def test_frame_keeps_utf8_and_turns_line_breaks_into_spaces() -> None:
    frame = syslog_frame(line("naïve ☃\nsecond\r\nthird\rfourth"))
    length, _, msg = frame.partition(b" ")
    assert int(length) == len(msg) > len(msg.decode("utf-8"))
    assert frame.count(b"\n") == 1 and b"\r" not in frame
    assert parse(msg).msg == "naïve ☃ second third fourth"


def test_frame_header_fields_cannot_shift() -> None:
    """A space or non-ASCII in a header field would move every later field, so it is replaced."""
    message = parse(split_frames(syslog_frame(line("m", app="my cache é", source="")))[0])
    assert (message.hostname, message.app_name, message.procid) == ("my_cache__", "-", "cachier")
    assert message.msg == "m"
    long = parse(split_frames(syslog_frame(line("m", app="a" * 300, source="s" * 60)))[0])
    assert (len(long.hostname), len(long.app_name)) == (255, 48)


def test_frame_never_raises_on_unencodable_text() -> None:
    assert syslog_frame(line("lone \ud800 surrogate")).endswith(b"lone ? surrogate\n")


# -- delivery -----------------------------------------------------------------------------
def test_batches_carry_logplex_headers_and_every_frame_in_order() -> None:
    async def main() -> None:
        async with Receiver() as receiver:
            url = receiver.url("/logs?app=x", userinfo="drain-user:s3cret@")
            async with httpx.AsyncClient() as client:
                drains = LogDrains(client, batch_max=100)
                drains.submit(url, line("queued before start"))
                await drains.start()
                texts = [f"line {i}: ünïcode ☃\nwrapped" for i in range(250)]
                for text in texts:
                    drains.submit(url, line(text))
                await wait_until(lambda: drains.stats[url]["delivered"] == 251)
                await drains.stop()
                assert not client.is_closed  # the caller's client is the caller's to close

        assert drains.stats[url] == {
            "delivered": 251,
            "dropped": 0,
            "failed_attempts": 0,
            "queued": 0,
        }
        assert len(receiver.requests) >= 3  # 251 lines cannot fit in fewer batches of 100
        auth = "Basic " + base64.b64encode(b"drain-user:s3cret").decode()
        tokens, frame_ids = set(), set()
        for request in receiver.requests:
            frames = split_frames(request.body)
            assert (request.method, request.target) == ("POST", "/logs?app=x")
            assert request.headers["content-type"] == "application/logplex-1"
            assert 1 <= int(request.headers["logplex-msg-count"]) == len(frames) <= 100
            assert request.headers["authorization"] == auth
            assert FRAME_ID_PATTERN.match(request.headers["logplex-frame-id"])
            tokens.add(request.headers["logplex-drain-token"])
            frame_ids.add(request.headers["logplex-frame-id"])
        assert tokens == {drain_token(url)} and TOKEN_PATTERN.match(drain_token(url))
        assert len(frame_ids) == len(receiver.requests)

        messages = received_messages(receiver)
        assert [m.msg for m in messages] == ["queued before start"] + [
            t.replace("\n", " ") for t in texts
        ]
        for m in messages:
            assert (m.pri, m.version, m.timestamp, m.hostname, m.app_name, m.procid, m.msgid) == (
                "190",
                "1",
                T,
                "my-cache",
                "cachier",
                "cachier",
                "-",
            )

    run(main)


def test_each_url_gets_its_own_stable_token_and_queue() -> None:
    async def main() -> None:
        async with Receiver() as receiver:
            first, second = receiver.url("/a"), receiver.url("/b")
            drains = LogDrains(egress=LOOPBACK_OK)  # makes (and on stop closes) its own client
            await drains.start()
            drains.submit(first, line("to a", app="cache-a"))
            drains.submit(second, line("to b", app="cache-b"))
            await wait_until(lambda: len(receiver.requests) == 2)
            await drains.stop()
            assert drains._client is None

        by_target = {r.target: r for r in receiver.requests}
        assert parse(split_frames(by_target["/a"].body)[0]).hostname == "cache-a"
        assert parse(split_frames(by_target["/b"].body)[0]).hostname == "cache-b"
        assert by_target["/a"].headers["logplex-drain-token"] == drain_token(first)
        assert drain_token(first) != drain_token(second)

    run(main)
    # Stable across instances and restarts, unchanged by a password rotation, hides the password.
    assert drain_token("https://u:one@logs.example/x") == drain_token(
        "https://u:two@logs.example/x"
    )
    assert "one" not in drain_token("https://u:one@logs.example/x")


def test_503s_are_retried_with_the_same_frame_id() -> None:
    async def main() -> None:
        async with Receiver(lambda n: 503 if n < 2 else 200) as receiver:
            url = receiver.url()
            drains = LogDrains(backoff_s=0.01, egress=LOOPBACK_OK)
            await drains.start()
            for i in range(5):
                drains.submit(url, line(f"m{i}"))
            await wait_until(lambda: drains.stats[url]["delivered"] == 5)
            await drains.stop()

        assert drains.stats[url] == {
            "delivered": 5,
            "dropped": 0,
            "failed_attempts": 2,
            "queued": 0,
        }
        first_three = receiver.requests[:3]
        assert len({r.headers["logplex-frame-id"] for r in first_three}) == 1
        assert len({r.body for r in first_three}) == 1
        assert [m.msg for m in received_messages(receiver)[-5:]] == [f"m{i}" for i in range(5)]

    run(main)


def test_a_batch_is_dropped_after_its_retries_and_delivery_goes_on() -> None:
    async def main() -> None:
        healthy = False
        async with Receiver(lambda n: 200 if healthy else 500) as receiver:
            url = receiver.url()
            drains = LogDrains(retries=2, backoff_s=0.01, egress=LOOPBACK_OK)
            await drains.start()
            drains.submit(url, line("lost"))
            await wait_until(lambda: drains.stats[url]["dropped"] == 1)
            assert len(receiver.requests) == 3  # one attempt and two retries
            healthy = True
            drains.submit(url, line("kept"))
            await wait_until(lambda: drains.stats[url]["delivered"] == 1)
            await drains.stop()

        assert drains.stats[url]["failed_attempts"] == 3
        assert [m.msg for m in received_messages(receiver)] == ["lost"] * 3 + ["kept"]

    run(main)


def test_a_down_drain_never_blocks_submit_and_counts_its_drops() -> None:
    async def main() -> None:
        url = closed_port_url()
        drains = LogDrains(batch_max=1000, retries=1, backoff_s=0.01, egress=LOOPBACK_OK)
        await drains.start()
        lines = [line(f"line {i}") for i in range(10_000)]
        started = time.perf_counter()
        for each in lines:
            drains.submit(url, each)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.05, f"10 000 submits took {elapsed * 1000:.1f} ms"
        await wait_until(lambda: drains.stats[url]["dropped"] == 10_000)
        await drains.stop()
        assert drains.stats[url] == {
            "delivered": 0,
            "dropped": 10_000,
            "failed_attempts": 20,
            "queued": 0,
        }

    run(main)


def test_a_full_queue_drops_its_oldest_lines() -> None:
    async def main() -> None:
        async with Receiver() as receiver:
            url = receiver.url()
            drains = LogDrains(queue_max=10, egress=LOOPBACK_OK)
            for i in range(25):  # not started yet: everything waits in the queue
                drains.submit(url, line(f"m{i}"))
            assert drains.stats[url] == {
                "delivered": 0,
                "dropped": 15,
                "failed_attempts": 0,
                "queued": 10,
            }
            await drains.start()
            await wait_until(lambda: drains.stats[url]["delivered"] == 10)
            await drains.stop()

        assert [m.msg for m in received_messages(receiver)] == [f"m{i}" for i in range(15, 25)]

    run(main)


def test_a_hung_drain_times_out_and_stop_gives_up_in_about_two_seconds() -> None:
    async def main() -> None:
        async with Receiver(lambda n: None) as receiver:
            url = receiver.url()
            drains = LogDrains(retries=1, backoff_s=0.01, timeout_s=0.1, egress=LOOPBACK_OK)
            await drains.start()
            drains.submit(url, line("never answered"))
            await wait_until(lambda: drains.stats[url]["dropped"] == 1)
            assert drains.stats[url]["failed_attempts"] == 2

            # the default 5 s timeout
            patient = LogDrains(batch_max=1, retries=5, backoff_s=0.01, egress=LOOPBACK_OK)
            await patient.start()
            patient.submit(url, line("in flight at stop"))
            patient.submit(url, line("still queued at stop"))
            await wait_until(lambda: len(receiver.requests) == 3)
            started = time.monotonic()
            await patient.stop()
            assert 1.5 < time.monotonic() - started < 3.0
            assert patient.stats[url]["dropped"] == 2
            await drains.stop()

    run(main)


def test_submit_from_another_thread_is_delivered() -> None:
    async def main() -> None:
        async with Receiver() as receiver:
            url = receiver.url()
            drains = LogDrains(egress=LOOPBACK_OK)
            await drains.start()

            def from_thread() -> None:
                assert threading.current_thread() is not threading.main_thread()
                for i in range(50):
                    drains.submit(url, line(f"t{i}"))

            await asyncio.to_thread(from_thread)
            await wait_until(lambda: drains.stats[url]["delivered"] == 50)
            await drains.stop()

        assert [m.msg for m in received_messages(receiver)] == [f"t{i}" for i in range(50)]

    run(main)


def test_unusable_urls_and_bad_lines_never_raise() -> None:
    async def main() -> None:
        drains = LogDrains(egress=LOOPBACK_OK)
        await drains.start()
        drains.submit("ftp://logs.example/x", line("m"))
        drains.submit("not a url", line("m"))
        drains.submit("http://[::1", line("m"))
        bad = DrainLine(T, "cachier", None, "app")  # type: ignore[arg-type]
        async with Receiver() as receiver:
            url = receiver.url()
            drains.submit(url, bad)
            drains.submit(url, line("good"))
            await wait_until(lambda: drains.stats[url]["delivered"] == 1)
            await drains.stop()
        assert drains.stats[url]["dropped"] == 1
        assert [m.msg for m in received_messages(receiver)] == ["good"]
        assert drains.stats["ftp://logs.example/x"]["dropped"] == 1
        assert drains.stats["not a url"]["dropped"] == 1
        assert drains.stats["http://[::1"]["dropped"] == 1

    run(main)


def test_nothing_secret_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        url = closed_port_url().replace("//", "//user:pa55word@") + "?token=tok3n"
        drains = LogDrains(retries=0, egress=LOOPBACK_OK)
        await drains.start()
        drains.submit(url, line("tenant secret message"))
        await wait_until(lambda: drains.stats[url]["dropped"] == 1)
        await drains.stop()

    with caplog.at_level(logging.DEBUG, logger="backend.control.drains"):
        run(main)
    assert "dropped" in caplog.text
    for secret in ("pa55word", "user", "tok3n", "/logs", "tenant secret"):
        assert secret not in caplog.text
