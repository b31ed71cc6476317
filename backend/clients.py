"""Log pymemcache (and everything built on it) in to a cachier cache.

cachier authenticates an ASCII connection by its first command: a ``set`` whose key is the
username and whose data is the password. pymemcache has no hook for "after connecting",
and it reconnects after any error, so every new socket must log in by itself. pymemcache
does take a ``socket_module`` (meant for gevent and the like) and opens every connection
through it, so the login lives there: :func:`authenticating_socket_module` returns a
module-like object whose sockets log in right after ``connect``. The same object
works for ``pymemcache.Client``, ``HashClient`` (which passes ``socket_module`` to each of
its clients) and Django's ``PyMemcacheCache`` (whose ``OPTIONS`` go to ``HashClient``),
where a ``Client`` subclass cannot be used at all.

The login waits for its ``STORED``: one round trip per new connection, which buys an
error on every command when the password is wrong. Sent with ``noreply``, a refused login
shows only on the next command that reads an answer, and pymemcache's default ``noreply``
sets in between (each on a fresh connection after the previous error) would be lost
without a word.

TLS goes through the helper, not through pymemcache's own ``tls_context``: pymemcache
wraps the socket *before* connecting and then talks only to the ``SSLSocket`` it got
back, so nothing a socket module hands out ever sees the connection after the handshake
and the login could not be sent over TLS. A socket from this module therefore refuses to
be wrapped, with a message saying where ``tls_context`` belongs.
"""

from __future__ import annotations

import socket as _socket
import ssl
import threading
from types import ModuleType
from typing import Any

from pymemcache.exceptions import MemcacheClientError

__all__ = [
    "AuthenticatingSocket",
    "AuthenticatingSocketModule",
    "AuthenticationError",
    "authenticating_socket_module",
    "login_command",
]

_MAX_REPLY = 1024


class AuthenticationError(MemcacheClientError):
    """cachier refused the login (wrong username or password, or too many failures).

    A ``MemcacheClientError``, so code that already handles pymemcache's errors handles
    it, and not an ``OSError``: ``HashClient`` would take that for a dead server, retry it
    and finally drop it, hiding a configuration error behind "all servers are down".
    """


def login_command(username: str, password: str) -> bytes:
    """The ASCII login: a ``set`` of the password under the username."""
    user = username.encode()
    secret = password.encode()
    if not user or any(byte <= 0x20 or byte == 0x7F for byte in user):
        raise ValueError("a cachier username is one word of printable characters")
    return b"set %s 0 0 %d\r\n%s\r\n" % (user, len(secret), secret)


def _read_line(sock: Any) -> bytes:
    """The server's one-line answer to the login, read without reading past it.

    Nothing else is in flight on a fresh connection, so the answer is the only thing to
    read; the bound keeps a server that is not cachier from making it read forever.
    """
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(_MAX_REPLY - len(line))
        if not chunk:  # a dropped connection, not a verdict: HashClient may retry it
            raise ConnectionResetError("cachier closed the connection before answering the login")
        line += chunk
        if len(line) >= _MAX_REPLY:
            break
    return line


class AuthenticatingSocket:
    """A socket that logs in to cachier as soon as it is connected.

    It wraps the socket the base module made, rather than subclassing ``socket.socket``,
    so that the base can be any socket module (gevent's, eventlet's) and so that after a
    TLS handshake the wrapper can switch to the ``SSLSocket`` and keep being the object
    pymemcache holds. Everything it does not define is the wrapped socket's.
    """

    def __init__(self, module: AuthenticatingSocketModule, sock: Any) -> None:
        self._module = module
        self._sock = sock

    def connect(self, address: Any) -> None:
        """Connect, then wrap with TLS if configured, then log in (over TLS when used).

        All of it runs under the timeout the caller set for connecting (pymemcache's
        ``connect_timeout``), the login's answer included.
        """
        self._sock.connect(address)
        context = self._module.tls_context
        if context is not None:
            hostname = self._module.hostname_for(address)
            self._sock = context.wrap_socket(self._sock, server_hostname=hostname)
        self._sock.sendall(self._module.login)
        reply = _read_line(self._sock)
        if reply != b"STORED\r\n":
            self._sock.close()
            error = reply.strip()
            raise AuthenticationError(error.partition(b" ")[2] or error or b"login refused")

    def connect_ex(self, address: Any) -> int:
        """``connect`` as an error number, for callers that probe with ``connect_ex``."""
        try:
            self.connect(address)
        except OSError as exc:
            return exc.errno or 1
        return 0

    def detach(self) -> int:
        """Refuse being wrapped from outside: the login could not go over that TLS.

        ``ssl`` calls ``detach`` after its ``SSLSocket`` has taken the descriptor, so the
        wrapped socket lets go of it first: the descriptor is then closed once, by the
        abandoned ``SSLSocket``, and never a second time by whoever closes this one.
        """
        self._sock.detach()
        raise TypeError(
            "pass tls_context to authenticating_socket_module(), not to the pymemcache "
            "client: pymemcache wraps the socket before connecting, so the login would "
            "not be sent over TLS"
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def __enter__(self) -> AuthenticatingSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()

    def __repr__(self) -> str:
        return f"<AuthenticatingSocket {self._sock!r}>"


class AuthenticatingSocketModule:
    """A stand-in for the ``socket`` module whose ``socket()`` logs in after connecting.

    Every other attribute (``getaddrinfo``, ``AF_INET``, ``TCP_NODELAY`` …) is the base
    module's. ``getaddrinfo`` also remembers which host name each address was looked up
    for, because a TLS handshake must check the certificate against the name, and
    ``connect`` only gets the address.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base: Any = _socket,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.login = login_command(username, password)
        self.base = base
        self.tls_context = tls_context
        self._hostnames: dict[Any, str] = {}
        self._lock = threading.Lock()

    def socket(self, *args: Any, **kwargs: Any) -> AuthenticatingSocket:
        """A new socket of the base module, wrapped to log in when it connects."""
        return AuthenticatingSocket(self, self.base.socket(*args, **kwargs))

    def getaddrinfo(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        """The base module's answer, remembering the host name of every address."""
        infos = self.base.getaddrinfo(host, port, *args, **kwargs)
        if isinstance(host, bytes):
            host = host.decode("idna")
        if isinstance(host, str):
            with self._lock:
                for *_, sockaddr in infos:
                    self._hostnames[_address_key(sockaddr)] = host
        return infos

    def hostname_for(self, address: Any) -> str | None:
        """The name the address was looked up for, else the address itself."""
        with self._lock:
            name = self._hostnames.get(_address_key(address))
        if name is not None:
            return name
        return address[0] if isinstance(address, tuple) else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.base, name)

    def __repr__(self) -> str:
        tls = " tls" if self.tls_context is not None else ""
        return f"<AuthenticatingSocketModule base={getattr(self.base, '__name__', self.base)}{tls}>"


def _address_key(address: Any) -> Any:
    """Host and port of an address (IPv6 addresses carry flow info and scope as well)."""
    return tuple(address[:2]) if isinstance(address, tuple) else address


def authenticating_socket_module(
    username: str,
    password: str,
    *,
    base: ModuleType | Any = _socket,
    tls_context: ssl.SSLContext | None = None,
) -> AuthenticatingSocketModule:
    """A ``socket_module`` for pymemcache that logs every connection in to cachier.

    Use it wherever pymemcache takes ``socket_module``; keep pymemcache's own timeouts::

        from pymemcache.client.base import Client
        from backend.clients import authenticating_socket_module

        login = authenticating_socket_module(user, password)
        client = Client((host, port), socket_module=login, connect_timeout=5, timeout=5)

    For TLS, give the context here (and not to the client)::

        login = authenticating_socket_module(user, password, tls_context=context)
    """
    return AuthenticatingSocketModule(username, password, base=base, tls_context=tls_context)
