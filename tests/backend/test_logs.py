"""What no log line may carry, whoever logged it."""

from __future__ import annotations

import logging

import pytest

from backend.logs import RedactSecrets, redact

SECRET = "Zx9vQ2mN8pL4kR7tW1yB3cD6fG0hJ5sA2eU8iO4nM7q"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (f"GET http://10.0.0.5:8080/dashboard/{SECRET}/api/stats 200", "/dashboard/<secret>/api"),
        (f'"GET /dashboard/{SECRET} HTTP/1.1" 404', "/dashboard/<secret> HTTP/1.1"),
        (f"drain https://user:{SECRET}@logs.example/x", "https://<credentials>@logs.example"),
        (f"drain https://logs.example/x?token={SECRET}&a=1", "?token=<secret>&a=1"),
        (f"Authorization: Bearer {SECRET}", "Bearer <secret>"),
    ],
)
def test_redact_removes_the_secret_and_keeps_the_shape(text: str, kept: str) -> None:
    cleaned = redact(text)
    assert SECRET not in cleaned
    assert kept in cleaned


def test_the_filter_redacts_arguments_and_tracebacks() -> None:
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "fetch %s failed",
        (f"http://h/dashboard/{SECRET}/api",),
        None,
    )
    try:
        raise ValueError(f"bad url http://h/dashboard/{SECRET}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactSecrets().filter(record)
    assert SECRET not in logging.Formatter().format(record)
