"""Provider apps: the config vars a cache's app should hold, and drain URL checks.

Modelled on a Heroku add-on: the provider holds ``MEMCACHIER_SERVERS``,
``MEMCACHIER_USERNAME`` and ``MEMCACHIER_PASSWORD`` (and ``MEMCACHIER_TLS_SERVERS`` while
the endpoints listen with TLS); changing them creates a numbered release and restarts the
app, each step visible in the app's log (``ControlPlane._push_config``). The pure rules
live here, the operations on the control plane.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from backend.control.errors import Invalid
from backend.control.models import Credential

CONFIG_NAMES = ("MEMCACHIER_SERVERS", "MEMCACHIER_USERNAME", "MEMCACHIER_PASSWORD")
TLS_CONFIG_NAME = "MEMCACHIER_TLS_SERVERS"


def desired_config(servers: str, tls_servers: str | None, primary: Credential) -> dict[str, str]:
    """The config vars the app should hold: the advertised addresses (never the bind
    address) and the primary credential; the TLS address only while TLS is on."""
    wanted = {
        "MEMCACHIER_SERVERS": servers,
        "MEMCACHIER_USERNAME": primary.username,
        "MEMCACHIER_PASSWORD": primary.password.decode(),
    }
    if tls_servers:
        wanted[TLS_CONFIG_NAME] = tls_servers
    return wanted


def changed_names(current: dict[str, str], wanted: dict[str, str]) -> list[str]:
    """Set, changed or removed (TLS turned off): every name either side holds, in order."""
    names = dict.fromkeys([*wanted, *current])
    return [name for name in names if current.get(name) != wanted.get(name)]


def check_drain_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("a log drain URL must be an http:// or https:// URL with a host")
