"""Numbers as the pages print them, shared so every page writes a size the same way."""

from __future__ import annotations


def size(nbytes: int) -> str:
    """Compact: the Caches page's Memory column holds size and share in 12 cells."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if nbytes >= scale:
            value = nbytes / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return f"{nbytes}B"
