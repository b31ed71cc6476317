"""Keyed DataTable rows that live refreshes update in place."""

from __future__ import annotations

from collections.abc import Collection

from textual.widgets import DataTable


def upsert_row(table: DataTable, key: str, cells: list) -> None:
    """Update a keyed row in place (no flicker, cursor kept), or add it."""
    if key in table.rows:
        for column, value in zip(table.columns, cells, strict=True):
            table.update_cell(key, column, value)
    else:
        table.add_row(*cells, key=key)


def remove_rows_except(table: DataTable, keep: Collection[str]) -> None:
    """Remove the rows whose key is not in ``keep`` (gone from the backend)."""
    for key in [k for k in table.rows if k.value not in keep]:
        table.remove_row(key)


def cursor_key(table: DataTable) -> str | None:
    """The key of the row under the cursor, or None when the table has no rows."""
    if not table.row_count:
        return None
    return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
