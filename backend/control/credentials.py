"""Credentials of a cache: add, capabilities, delete, promote.

Every change is applied to the shared in-memory records after its transaction commits, so
live sessions see it on their next command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backend.control import apps
from backend.control.errors import Conflict, NotFound
from backend.control.models import Cache, Credential, timestamp

if TYPE_CHECKING:
    from backend.control.caches import ControlPlane


def _find(cache: Cache, username: str) -> Credential:
    credential = cache.credential(username)
    if credential is None:
        raise NotFound(f"cache {cache.name} has no credential {username!r}")
    return credential


def add(control: ControlPlane, cache: Cache) -> Credential:
    credential = control.new_credential(cache, primary=False, now=timestamp())
    with control.transaction():
        control.insert_credential(credential)
        control.log(cache.id, f"Credential {credential.username} added")
    cache.credentials.append(credential)
    control.credentials[credential.username] = credential
    return credential


def set_capabilities(control: ControlPlane, cache: Cache, username: str, write: bool | None,
                     flush: bool | None) -> Credential:  # fmt: skip
    """Fields left as None keep their value."""
    credential = _find(cache, username)
    new_write = credential.write if write is None else write
    new_flush = credential.flush if flush is None else flush
    with control.transaction():
        control.db.set_capabilities(username, new_write, new_flush)
        control.log(
            cache.id,
            f"Credential {username} capabilities: write={'on' if new_write else 'off'}, "
            f"flush={'on' if new_flush else 'off'}",
        )
    credential.write, credential.flush = new_write, new_flush
    return credential


def delete(control: ControlPlane, cache: Cache, username: str) -> int:
    """Delete a secondary credential and close its live connections (returns how many)."""
    credential = _find(cache, username)
    if credential.primary:
        raise Conflict("the primary credential cannot be deleted: promote another credential first")
    with control.transaction():
        control.db.delete_credential(username)
        control.log(cache.id, f"Credential {username} deleted")
    credential.revoked = True  # a session mid-batch stops at its next command
    cache.credentials.remove(credential)
    del control.credentials[username]
    return control.dataplane.disconnect(username)


def promote(control: ControlPlane, cache: Cache, username: str) -> Credential:
    """Make a secondary the primary and push it to the app (the old primary keeps working)."""
    credential = _find(cache, username)
    if credential.primary:
        raise Conflict(f"credential {username} is already the primary")
    old = cache.primary()
    with control.transaction():
        control.db.set_primary(cache.id, username)
        old.primary, credential.primary = False, True
        try:
            control.log(cache.id, f"Credential {username} promoted to primary "
                                  f"({old.username} is now a secondary)")  # fmt: skip
            apps.push_config(control, cache, f"credential {username} promoted")
        except BaseException:
            old.primary, credential.primary = True, False
            raise
    return credential
