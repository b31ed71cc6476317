"""Messages the workers post; pages own the state they carry (and tests inject them).

Reads end in a ``...Fetched`` message. A mutation ends in exactly one message: a
``Mutated`` subclass carrying the API's answer, or ``MutationFailed`` with a readable
error; ``Page`` handles both bases (the action's key is enabled again) and the page that
started it handles the subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # annotations only: importing a page must not wait for pydantic
    from backend.api.schemas import (
        AppOut,
        CacheInfo,
        CacheOut,
        CachePageOut,
        CredentialOut,
        DeleteOut,
        FlushOut,
        LogsOut,
        MigrateOut,
        PlanOut,
        RotateOut,
        StatsOut,
        StatusOut,
    )


@dataclass
class CachesFetched(Message):
    """A page of the admin list: the caches after ``after`` (a cache's name and id; None:
    from the first), those matching ``q``."""

    page: CachePageOut
    status: StatusOut | None = None  # None: the cluster lights shown stay (a page on scroll)
    after: tuple[str, str] | None = None
    q: str = ""


@dataclass
class StatusFetched(Message):
    status: StatusOut


@dataclass
class AnalyticsFetched(Message):
    cache: CacheInfo
    stats: StatsOut
    since: float | None = None  # set: only the samples after this time (append them)


@dataclass
class CredentialsFetched(Message):
    cache: CacheInfo
    credentials: list[CredentialOut]
    app: AppOut


@dataclass
class LogsFetched(Message):
    logs: LogsOut
    replace: bool  # a first page (replace the view) or new lines after the cursor


@dataclass
class FetchFailed(Message):
    error: str


@dataclass
class PlansFetched(Message):
    plans: list[PlanOut]


# -- mutations ------------------------------------------------------------------------
@dataclass
class Mutated(Message):
    """A mutation's call returned; the subclass says which and carries the answer.

    Every subclass takes ``(action, answer)`` first, so ``Page.mutate`` can build it (with
    any further fields bound by ``functools.partial``)."""

    action: str  # the page action that ran it: its key is enabled again


@dataclass
class MutationFailed(Message):
    action: str
    description: str  # what was being done ("Promoting USER2"): the notice says it
    error: str  # readable, from the API or the client (never a traceback)


@dataclass
class CacheCreated(Mutated):
    cache: CacheOut


@dataclass
class CredentialAdded(Mutated):
    credential: CredentialOut


@dataclass
class CapabilityChanged(Mutated):
    credential: CredentialOut
    capability: str  # "write" or "flush"


@dataclass
class CredentialPromoted(Mutated):
    credential: CredentialOut


@dataclass
class CredentialDeleted(Mutated):
    deleted: DeleteOut


@dataclass
class SsoRotated(Mutated):
    rotated: RotateOut


@dataclass
class CacheFlushed(Mutated):
    flushed: FlushOut
    cache: CacheInfo  # the cache as it was when the flush was asked for


@dataclass
class CacheMoved(Mutated):
    moved: MigrateOut
    cache: CacheInfo  # the cache as it was when the move was asked for
