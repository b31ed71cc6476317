"""Keyed DataTable rows that live refreshes update in place."""

from __future__ import annotations

from textual.widgets import DataTable


def upsert_row(table: DataTable, key: str, cells: list) -> None:
    """Update a keyed row in place (no flicker, cursor kept), or add it."""
    if key in table.rows:
        for column, value in zip(table.columns, cells, strict=True):
            table.update_cell(key, column, value)
    else:
        table.add_row(*cells, key=key)
