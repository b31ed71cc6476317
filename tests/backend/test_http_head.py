"""HEAD answers like GET without a body: uptime checkers and feed readers ask with HEAD."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.conftest import RunningService, address

PUBLIC_GETS = ["/healthz", "/metrics", "/status.rss", "/api/v1/status", "/api/v1/plans"]


@pytest.mark.parametrize("path", PUBLIC_GETS)
def test_head_answers_like_get_without_a_body(service: RunningService, path: str) -> None:
    url = service.api_url + path
    got = httpx.get(url)
    head = httpx.head(url)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    if path == "/healthz":  # the others change between two requests
        assert head.headers["content-length"] == str(len(got.content))


def test_head_sends_no_body_bytes_on_the_wire(service: RunningService) -> None:
    """httpx would drop a body after a HEAD; the socket shows none is sent."""
    host, port = address(service.api_url.removeprefix("http://"))
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(b"HEAD /status.rss HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"application/rss+xml" in head
    assert rest == b""


def test_head_on_a_route_without_get_is_still_refused(service: RunningService) -> None:
    response = httpx.head(service.api_url + "/api/v1/admin/caches/x/flush")
    assert response.status_code == 405
