"""``--database URL``: which control repository to open, and opening it.

``sqlite:///path`` (the embedded default is the data dir's ``cachier.sqlite3``) or
``postgresql://…`` (libpq's URL, as ``psql`` takes it). The URL is checked when the
configuration is built, so a typo is a one-line error before anything starts; psycopg is
imported only when a PostgreSQL URL is opened, so the embedded default never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from backend import datadir

if TYPE_CHECKING:
    from backend.control.repository import ControlRepository

SQLITE_FILE = "cachier.sqlite3"
POSTGRES_SCHEMES = ("postgresql", "postgres")


class DatabaseUrlError(ValueError):
    """A --database value that names no database we can open; one readable line."""


class DatabaseUnavailable(RuntimeError):
    """The database could not be opened (unreachable, refused, newer schema); one line."""


@dataclass(frozen=True)
class DatabaseUrl:
    kind: str  # "sqlite" or "postgresql"
    url: str
    sqlite_path: Path | None = None  # None for the data dir's default file

    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))

    def describe(self, data_dir: Path) -> str:
        if self.kind == "sqlite":
            return f"SQLite {self.sqlite_path or data_dir / SQLITE_FILE}"
        return f"PostgreSQL {self.redacted()}"


def parse_database_url(url: str) -> DatabaseUrl:
    """Check ``url``; the empty string is the embedded default."""
    text = url.strip()
    if not text:
        return DatabaseUrl("sqlite", "")
    parts = urlsplit(text)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path or parts.path == "/":
            raise DatabaseUrlError(
                f"--database {text!r}: write a SQLite file as sqlite:///path/to/file"
            )
        return DatabaseUrl("sqlite", text, Path(parts.path))
    if parts.scheme in POSTGRES_SCHEMES:
        try:
            parts.port  # noqa: B018 (urlsplit checks the port only when asked)
        except ValueError as exc:
            raise DatabaseUrlError(f"--database: {exc}") from None
        return DatabaseUrl("postgresql", text)
    shown = DatabaseUrl("postgresql", text).redacted() if parts.password else text
    raise DatabaseUrlError(
        f"--database {shown!r}: give sqlite:///path or postgresql://user@host/dbname"
    )


def open_repository(database: DatabaseUrl, data_dir: Path) -> ControlRepository:
    """The repository ``database`` names, migrated to the current schema.

    A file's mode is set before SQLite opens it (the data dir rule: owner only). Any
    failure to reach or use the database becomes ``DatabaseUnavailable`` with one line.
    """
    from backend.control.sql import NewerSchemaError

    if database.kind == "sqlite":
        import sqlite3

        from backend.control.db import Database

        path = database.sqlite_path or data_dir / SQLITE_FILE
        try:
            datadir.create_private_file(path)
            return Database(path)
        except (OSError, sqlite3.Error, NewerSchemaError) as exc:
            raise DatabaseUnavailable(f"cannot open database {path}: {exc}") from None

    import psycopg

    from backend.control.postgres import PostgresRepository

    try:
        return PostgresRepository(database.url)
    except (psycopg.Error, NewerSchemaError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(f"cannot use database {database.redacted()}: {reason}") from None
