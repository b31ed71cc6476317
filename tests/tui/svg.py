"""Reading an exported SVG screen back: which text is drawn in which colour."""

from __future__ import annotations

import colorsys
import html
import re

_STYLE = re.compile(r"\.(terminal-[\w-]+) \{ fill: (#[0-9a-fA-F]{6})")
_TEXT = re.compile(r'<text class="(terminal-[\w-]+)"[^>]*>([^<]*)</text>')


def text_fills(svg: str) -> list[tuple[str, str]]:
    """Every text run of the screen with its fill colour, in drawing order."""
    fills = dict(_STYLE.findall(svg))
    return [
        (html.unescape(text).replace("\xa0", " "), fills.get(cls, "").lower())
        for cls, text in _TEXT.findall(svg)
    ]


def fills_of(svg: str, text: str) -> set[str]:
    """The fill colours of every run that reads exactly ``text``."""
    return {fill for run, fill in text_fills(svg) if run.strip() == text}


def hue_name(hex_colour: str) -> str:
    """A colour's hue family as a person names it: red, yellow, green, blue (or other)."""
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    hue, lightness, saturation = colorsys.rgb_to_hls(r, g, b)
    if saturation < 0.25 or not 0.1 < lightness < 0.9:
        return "grey"
    degrees = hue * 360
    for name, low, high in (
        ("red", -20, 15),
        ("yellow", 40, 70),
        ("green", 90, 160),
        ("blue", 195, 250),
    ):
        if low <= degrees < high or low <= degrees - 360 < high:
            return name
    return "other"


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours."""

    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)
