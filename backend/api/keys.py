"""The owner's Keys view over HTTP: sampled hot keys and prefixes, largest values, and
hits and misses per command. Keys are the owner's data: this is reachable through the
cache's dashboard URL only, never from an operator route, a log or a metric."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query

from backend.api.deps import Control, SsoCache
from backend.api.errors import errors
from backend.api.schemas import CommandCountOut, CommandName, KeyCountOut, KeysOut, LargestOut
from backend.keyactivity import SAMPLE_EVERY, KeyCount

router = APIRouter(
    prefix="/dashboard/{sso_secret}/api", tags=["dashboard"], responses=errors(404, 422)
)

Separator = Annotated[
    str,
    Query(
        pattern=r"^[!-~]$",
        description="one printable ASCII character: a key's prefix ends at its first one",
    ),
]


def _text(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def _counts(rows: list[KeyCount]) -> list[KeyCountOut]:
    return [
        KeyCountOut(
            key=_text(r.key),
            gets=r.gets,
            hits=r.hits,
            sets=r.sets,
            deletes=r.deletes,
            bytes=r.bytes,
            error=r.error,
        )
        for r in rows
    ]


@router.get("/keys", response_model=KeysOut)
async def keys(cache: SsoCache, control: Control, separator: Separator = ":") -> KeysOut:
    """Asking starts (or prolongs for 5 minutes) sampling one command in eight of this
    cache; the first answer has no keys yet."""
    report, commands = control.key_activity(cache, separator.encode())
    counted = [
        CommandCountOut(command=cast(CommandName, name), hits=hits, misses=misses)
        for name, (hits, misses) in commands.items()
    ]
    if report is None:
        return KeysOut(
            tracking=False,
            tracking_for_s=0.0,
            window_s=0.0,
            sample_every=SAMPLE_EVERY,
            keys=[],
            prefixes=[],
            largest=[],
            commands=counted,
        )
    return KeysOut(
        tracking=True,
        tracking_for_s=round(report.tracking_for_s, 3),
        window_s=round(report.window_s, 3),
        sample_every=report.sample_every,
        keys=_counts(report.keys),
        prefixes=_counts(report.prefixes),
        largest=[LargestOut(key=_text(k), size=size) for k, size in report.largest],
        commands=counted,
    )
