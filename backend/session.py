"""One memcache connection's state: who authenticated, which cache, which proxy serves it."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backend.activity import CredentialActivity, LastAuth, Protocol_
    from backend.control.models import Credential
    from backend.dataplane import DataPlane
    from backend.engine import Engine
    from backend.topology import Proxy


class AuthResult(enum.Enum):
    OK = "ok"
    FAILED = "authentication failure"
    # The same words whichever limit refused: a guesser learns nothing about the username.
    THROTTLED = "too many failed authentications, try again later"
    UNAVAILABLE = "no proxy of this cache's cluster is available"
    WRONG_CLUSTER = "this cache is not on this proxy's cluster; connect to its servers endpoint"
    # Another process runs the cache's cluster: the codec hands the connection to a relay
    # (``backend.relay``), which replays the authentication there. Never sent to a client.
    RELAY = "relayed to the process that runs this cache's cluster"
    # Several processes: this one lost the other processes' changes and is re-reading them.
    RESYNCING = "the service is reloading credentials, try again shortly"


class AuthenticatedSession:
    """What a successful authentication binds a connection to: the credential, its cache's
    storage engine and the proxy serving it. Commands and stats take this type, so they
    never test Optionals: an unauthenticated connection has none to give them."""

    __slots__ = ("credential", "engine", "proxy", "peer_host", "dataplane", "activity", "login")

    def __init__(
        self,
        credential: Credential,
        engine: Engine,
        proxy: Proxy,
        peer_host: str,
        dataplane: DataPlane,
        activity: CredentialActivity,
    ) -> None:
        self.credential = credential
        self.engine = engine
        self.proxy = proxy
        self.peer_host = peer_host
        self.dataplane = dataplane
        # Shared by every session of the credential: each command adds one to its
        # ``commands`` (``protocol.commands``); ``login`` is this session's authentication.
        self.activity = activity
        self.login: LastAuth | None = activity.last_auth

    def speaks_meta(self) -> None:
        """An ASCII session sent its first meta command: if it is still the credential's
        latest authentication, that one is reported as ``meta``."""
        login, activity = self.login, self.activity
        if login is not None and activity.last_auth is login and login.protocol == "ascii":
            activity.last_auth = self.login = replace(login, protocol="meta")

    def record_flush(self) -> None:
        self.dataplane.record_flush(self.credential.cache_id, self.proxy.hostname)


class Session:
    """Created per connection; ``auth`` is set by a successful authentication.

    ``listener_proxy`` is set when the client connected to a proxy's own port (the monitor
    does); region endpoint sessions get their proxy chosen at authentication.
    """

    __slots__ = (
        "dataplane",
        "peer_host",
        "region",
        "listener_proxy",
        "auth",
        "close_connection",
        "relay_to",
    )

    def __init__(
        self,
        dataplane: DataPlane,
        peer_host: str,
        region: str,
        close_connection: Callable[[], None],
        listener_proxy: Proxy | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.peer_host = peer_host
        self.region = region
        self.listener_proxy = listener_proxy
        self.close_connection = close_connection
        self.auth: AuthenticatedSession | None = None
        # Set with ``AuthResult.RELAY``: the credential, and the addresses of the proxies
        # of its cache's cluster on the process that runs it.
        self.relay_to: tuple[Credential, list[str]] | None = None

    @property
    def authenticated(self) -> bool:
        return self.auth is not None

    def authenticate(
        self, username: bytes, password: bytes, protocol: Protocol_ = "ascii"
    ) -> AuthResult:
        dataplane = self.dataplane
        throttle = dataplane.throttle
        name = username.decode("utf-8", "replace")
        if not throttle.allowed(self.peer_host, name):
            return AuthResult.THROTTLED
        if not dataplane.control_link_up:  # a revocation may be unknown here yet
            return AuthResult.RESYNCING
        credential = dataplane.credentials.get(name)
        # Compare even for unknown users so timing does not reveal which usernames exist.
        expected = credential.password if credential is not None else b"\0" * 32
        if not hmac.compare_digest(password, expected) or credential is None:
            throttle.record_failure(self.peer_host, name)
            return AuthResult.FAILED
        cache = dataplane.cache_of(credential)
        if cache is None or cache.region != self.region:
            throttle.record_failure(self.peer_host, name)
            return AuthResult.FAILED
        throttle.record_success(self.peer_host, name)
        if self.listener_proxy is None:
            proxy = dataplane.choose_proxy(cache.cluster)
            if proxy is None:
                remote = dataplane.remote_proxies.get(cache.cluster)
                if not remote:  # run nowhere alive: like a cluster that is down
                    return AuthResult.UNAVAILABLE
                self.relay_to = (credential, remote)
                return AuthResult.RELAY
        elif self.listener_proxy.cluster.name == cache.cluster:
            proxy = self.listener_proxy
            if dataplane.proxy_state[proxy].down:
                return AuthResult.UNAVAILABLE
        else:
            return AuthResult.WRONG_CLUSTER
        engine = dataplane.engine_for(cache)
        activity = dataplane.record_auth(
            credential.username, protocol, proxy.hostname, self.peer_host
        )
        self.auth = AuthenticatedSession(
            credential, engine, proxy, self.peer_host, dataplane, activity
        )
        dataplane.attach(self)
        engine.stats.auth_cmds += 1  # counted here for every protocol's authentication
        return AuthResult.OK

    def is_own_credential(self, username: bytes, password: bytes) -> bool:
        """A second authentication on an authenticated connection succeeds only with the
        connection's own credential; compared in constant time, like the first."""
        assert self.auth is not None
        credential = self.auth.credential
        same_user = hmac.compare_digest(credential.username.encode(), username)
        same_password = hmac.compare_digest(credential.password, password)
        return same_user and same_password

    def connection_lost(self) -> None:
        if self.auth is not None:
            self.dataplane.detach(self)
