"""Provider apps: config vars pushed from the primary credential, releases, restarts.

Modelled on a Heroku add-on: the provider holds ``MEMCACHIER_SERVERS``,
``MEMCACHIER_USERNAME`` and ``MEMCACHIER_PASSWORD`` (and ``MEMCACHIER_TLS_SERVERS`` while
the endpoints listen with TLS); changing them creates a numbered release and restarts the
app, each step visible in the app's log.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from backend.control.errors import Invalid
from backend.control.models import DRAIN_URL_PATTERN, App, Cache, timestamp

if TYPE_CHECKING:
    from backend.control.caches import ControlPlane

CONFIG_NAMES = ("MEMCACHIER_SERVERS", "MEMCACHIER_USERNAME", "MEMCACHIER_PASSWORD")
TLS_CONFIG_NAME = "MEMCACHIER_TLS_SERVERS"


def desired_config(control: ControlPlane, cache: Cache) -> dict[str, str]:
    """The config vars the app should hold now: the advertised addresses (never the bind
    address) and the primary credential; the TLS address only while TLS is on."""
    primary = cache.primary()
    wanted = {
        "MEMCACHIER_SERVERS": control.servers(cache),
        "MEMCACHIER_USERNAME": primary.username,
        "MEMCACHIER_PASSWORD": primary.password.decode(),
    }
    tls_servers = control.tls_servers(cache)
    if tls_servers:
        wanted[TLS_CONFIG_NAME] = tls_servers
    return wanted


def create(control: ControlPlane, cache: Cache) -> App:
    """The app of a new cache, at release 1; call inside a control-plane transaction."""
    app = App(f"app-{cache.name}", 1, desired_config(control, cache))
    control.insert_app(cache, app)
    control.db.insert_release(cache.id, 1, "Add cachier add-on", timestamp())
    control.log(cache.id, f"Config vars {', '.join(app.config_vars)} set on app {app.name}")
    return app


def push_config(control: ControlPlane, cache: Cache, reason: str) -> list[str]:
    """Push changed config vars: a new release and a restart. Returns the names changed.

    Call inside a control-plane transaction, after the change that caused it.
    """
    app = cache.app
    assert app is not None
    wanted = desired_config(control, cache)
    # Set, changed or removed (TLS turned off): every name either side holds.
    names = dict.fromkeys([*wanted, *app.config_vars])
    changed = [name for name in names if app.config_vars.get(name) != wanted.get(name)]
    if not changed:
        return []
    release = app.release + 1
    config = control.secrets.encrypt(json.dumps(wanted).encode())
    control.db.update_app_config(cache.id, release, config)
    description = f"Set {', '.join(changed)} config vars ({reason})"
    control.db.insert_release(cache.id, release, description, timestamp())
    control.log(cache.id, f"Config vars {', '.join(changed)} pushed to app {app.name} ({reason})")
    control.log(cache.id, f"Release v{release} created: {description}")
    control.log(cache.id, f"App {app.name} restarted to pick up release v{release}")
    app.config_vars, app.release = wanted, release
    return changed


def refresh_servers(control: ControlPlane) -> None:
    """After start-up: endpoints may listen elsewhere, be advertised under another name,
    or gain or lose TLS since last time; tell the apps (existing ones included)."""
    for cache in control.list_caches():
        if cache.app is not None and control.servers(cache):
            with control.transaction():
                push_config(control, cache, "endpoint address changed")


DRAIN_URL = re.compile(DRAIN_URL_PATTERN)


def check_drain_url(url: str) -> None:
    """Refuse (422) a URL the drain worker could not use, before anything resolves it.

    The rule is the pattern the API documents (DRAIN_URL_PATTERN), so what the document
    promises and what is accepted are the same strings. ``urlsplit`` still raises
    ValueError for a bracketed host that is not an address (``http://[::1/``, ``[zz]``) and
    ``.port`` for a bad port: an owner's typo, so an answer, not a server error.
    """
    if not DRAIN_URL.fullmatch(url):
        raise Invalid("a log drain URL must be an http:// or https:// URL with a host and, "
                      "if any, a port from 1 to 65535")  # fmt: skip
    try:
        parts = urlsplit(url)
        parts.hostname, parts.port  # noqa: B018  # each raises ValueError when malformed
    except ValueError as exc:
        raise Invalid(f"a log drain URL must be a valid http(s) URL ({exc})") from None


def set_log_drain(control: ControlPlane, cache: Cache, url: str | None) -> App:
    app = cache.app
    assert app is not None
    if url is not None:
        check_drain_url(url)
    with control.transaction():
        control.db.set_log_drain(cache.id, control.encrypt_optional(url))
        where = f"to {urlsplit(url).hostname}" if url else "removed"
        control.log(cache.id, f"Log drain of app {app.name} {where}")  # never the URL's secrets
    app.log_drain = url
    return app
