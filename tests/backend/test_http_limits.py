"""The HTTP API bounds what a caller can make it read, and refuses strangers first."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, CacheHandle, RunningService

HUGE = 256 * 1024 * 1024


def raw_request(running: RunningService, head: str, body: bytes = b"") -> bytes:
    """Send a request head (and maybe the start of a body) and read the whole answer.

    The answer must come although most of a declared body was never sent: proof that the
    server answered without reading it."""
    url = httpx.URL(running.api_url)
    with socket.create_connection((url.host, url.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def post_head(path: str, length: int | None, token: str | None = None) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: test", "Content-Type: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return "\n".join(lines) + "\n"


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_huge_body_without_a_token_is_refused_before_it_is_read(
    service: RunningService,
) -> None:
    started = time.monotonic()
    answer = raw_request(service, post_head("/api/v1/admin/caches", HUGE), b"{" * 4096)
    assert status_of(answer) == 401 and b"admin token" in answer
    assert time.monotonic() - started < 2


def test_a_huge_body_with_the_token_is_refused_by_its_declared_length(
    service: RunningService,
) -> None:
    answer = raw_request(service, post_head("/api/v1/admin/caches", HUGE, ADMIN_TOKEN))
    assert status_of(answer) == 413 and b"over 65536 bytes" in answer


def test_a_dashboard_route_with_an_unknown_secret_never_reads_the_body(
    service: RunningService,
) -> None:
    answer = raw_request(service, post_head("/dashboard/not-a-secret/api/credentials", HUGE))
    assert status_of(answer) == 404


def chunked(payload: bytes, size: int = 8192) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size])
        for i in range(0, len(payload), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_only_up_to_the_bound(service: RunningService) -> None:
    too_big = b'{"name": "' + b"x" * 70_000 + b'"}'
    answer = raw_request(
        service, post_head("/api/v1/admin/caches", None, ADMIN_TOKEN), chunked(too_big)
    )
    assert status_of(answer) == 413
    fine = b'{"name": "chunked-ok", "plan": "free"}'
    answer = raw_request(
        service, post_head("/api/v1/admin/caches", None, ADMIN_TOKEN), chunked(fine, 7)
    )
    assert status_of(answer) == 201, answer


@pytest.mark.parametrize(
    ("route", "params"),
    [
        ("/logs", {"after": "9223372036854775808"}),
        ("/logs", {"after": "-1"}),
        ("/logs", {"after": "1e400"}),
        ("/logs", {"limit": "100000"}),
        ("/stats", {"window": "nan"}),
        ("/stats", {"window": "inf"}),
        ("/stats", {"since": "nan"}),
        ("/stats", {"since": "1e400"}),
        ("/stats", {"since": "-5"}),
    ],
)
def test_out_of_range_query_parameters_are_422_never_500(
    cache: CacheHandle, route: str, params: dict[str, str]
) -> None:
    response = httpx.get(cache.dashboard_api + route, params=params)
    assert response.status_code == 422, response.text
    assert "error" in response.json()


def test_the_largest_id_is_still_in_range(cache: CacheHandle) -> None:
    response = httpx.get(cache.dashboard_api + "/logs", params={"after": str(2**63 - 1)})
    assert response.status_code == 200 and response.json()["lines"] == []
