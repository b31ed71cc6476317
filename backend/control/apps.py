"""Provider apps: the config vars a cache's app should hold, and drain URL checks.

Modelled on a Heroku add-on: the provider holds ``MEMCACHIER_SERVERS``,
``MEMCACHIER_USERNAME`` and ``MEMCACHIER_PASSWORD`` (and ``MEMCACHIER_TLS_SERVERS`` while
the endpoints listen with TLS); changing them creates a numbered release and restarts the
app, each step visible in the app's log (``ControlPlane._push_config``). The pure rules
live here, the operations on the control plane.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from backend.control.errors import Invalid
from backend.control.models import DRAIN_URL_PATTERN, Credential

SERVERS_VAR = "MEMCACHIER_SERVERS"
CONFIG_NAMES = (SERVERS_VAR, "MEMCACHIER_USERNAME", "MEMCACHIER_PASSWORD")
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


DRAIN_URL = re.compile(DRAIN_URL_PATTERN)


def check_drain_url(url: str) -> None:
    """Refuse (422) a URL the drain worker could not use, before anything resolves it.

    The rule is the pattern the API documents (DRAIN_URL_PATTERN), so what the document
    promises and what is accepted are the same strings. ``urlsplit`` still raises
    ValueError for a bracketed host that is not an address (``http://[::1/``, ``[zz]``) and
    ``.port`` for a bad port: an owner's typo, so an answer, not a server error.
    """
    if not DRAIN_URL.fullmatch(url):
        raise Invalid(
            "a log drain URL must be an http:// or https:// URL with a host and, "
            "if any, a port from 1 to 65535"
        )
    try:
        parts = urlsplit(url)
        parts.hostname, parts.port  # noqa: B018  # each raises ValueError when malformed
    except ValueError as exc:
        raise Invalid(f"a log drain URL must be a valid http(s) URL ({exc})") from None
