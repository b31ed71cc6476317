"""A raw-socket memcache client for byte-exact protocol tests."""

from __future__ import annotations

import socket
import struct
import time

from tests.conftest import CacheHandle


class Wire:
    def __init__(
        self, address: tuple[str, int], timeout: float = 5.0, source: str | None = None
    ) -> None:
        """``source``: the local address to connect from (any of 127.0.0.0/8 on Linux)."""
        source_address = (source, 0) if source is not None else None
        self.sock = socket.create_connection(
            address, timeout=timeout, source_address=source_address
        )
        self.pending = b""

    @classmethod
    def authenticated(
        cls, cache: CacheHandle, username: str | None = None, password: str | None = None
    ) -> Wire:
        wire = cls(cache.endpoint)
        user = username or cache.username
        secret = (password or cache.password).encode()
        wire.send(b"set %s 0 0 %d\r\n%s\r\n" % (user.encode(), len(secret), secret))
        assert wire.read_exactly(8) == b"STORED\r\n"
        return wire

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        self.pending += chunk
        return bool(chunk)

    def read_exactly(self, n: int) -> bytes:
        while len(self.pending) < n:
            if not self._fill():
                raise ConnectionError(f"closed after {self.pending!r}")
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def read_until(self, terminator: bytes) -> bytes:
        while terminator not in self.pending:
            if not self._fill():
                raise ConnectionError(f"closed after {self.pending!r}")
        end = self.pending.index(terminator) + len(terminator)
        data, self.pending = self.pending[:end], self.pending[end:]
        return data

    def ask(self, request: bytes) -> bytes:
        """Send ``request`` then ``mn``; everything before ``MN`` is the exact reply."""
        self.send(request + b"mn\r\n")
        return self.read_until(b"MN\r\n")[:-4]

    def read_to_close(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes; fails if it does not close."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not self._fill():
                    data, self.pending = self.pending, b""
                    return data
            except ConnectionResetError:
                data, self.pending = self.pending, b""
                return data
        raise AssertionError(f"connection still open; got {self.pending!r}")

    def close(self) -> None:
        self.sock.close()


# Extras of binary requests, as memcached's binary protocol lays them out.
def store_extras(flags: int = 0, exptime: int = 0) -> bytes:
    return struct.pack("!II", flags, exptime)


def arith_extras(delta: int, initial: int = 0, exptime: int = 0) -> bytes:
    return struct.pack("!QQI", delta, initial, exptime)


def u32(n: int) -> bytes:
    return struct.pack("!I", n)
