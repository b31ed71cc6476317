"""The TUI's one error type for the backend, importable without the HTTP client."""

from __future__ import annotations


class ApiError(Exception):
    """A readable failure: shown to the user as is."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
