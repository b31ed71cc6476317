"""Filling a cache fast over the ASCII protocol, for benchmarks that need it full.

The scripts run as ``python bench/<script>.py``, so this module sits beside them and is
imported by name.
"""

from __future__ import annotations

import socket

from processes import BenchError


def fill(
    server: str,
    username: str,
    password: str,
    value_size: int,
    count: int,
    *,
    pipeline: int,
    timeout_s: float,
    flag_mask: int = 0,
    exptime: int = 0,
) -> None:
    """Authenticate (the SASL-less ``set`` of cachier's ASCII login) and store ``count``
    values of ``value_size`` bytes as ``k:<10 digits>``, ``pipeline`` noreply sets per
    write; returns once the server has done them all (a meta no-op answers after them).

    Item ``i`` gets flags ``i & flag_mask`` and the given ``exptime``, so a bench that
    restores items can check those came back too."""
    host, _, port = server.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
        secret = password.encode()
        sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (username.encode(), len(secret), secret))
        if sock.recv(64) != b"STORED\r\n":
            raise BenchError("authentication failed")
        value = b"v" * value_size
        for start in range(0, count, pipeline):
            batch = [
                b"set k:%010d %d %d %d noreply\r\n%s\r\n"
                % (i, i & flag_mask, exptime, value_size, value)
                for i in range(start, min(start + pipeline, count))
            ]
            sock.sendall(b"".join(batch))
        sock.sendall(b"mn\r\n")  # the meta no-op answers once every set before it is done
        answer = b""
        while not answer.endswith(b"MN\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise BenchError(f"connection closed during the fill: {answer[-200:]!r}")
            answer += chunk
        if answer != b"MN\r\n":
            raise BenchError(f"unexpected answers during the fill: {answer[:200]!r}")
