"""Messages the fetch workers post; pages own the state they carry (and tests inject them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # annotations only: importing a page must not wait for pydantic
    from backend.api.schemas import (
        AppOut,
        CacheInfo,
        CacheOut,
        CredentialOut,
        LogsOut,
        StatsOut,
        StatusOut,
    )


@dataclass
class CachesFetched(Message):
    caches: list[CacheOut]
    status: StatusOut


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
