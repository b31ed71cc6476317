"""Status as glyph + word + colour, so it reads without colour too (NO_COLOR, colour-blind)."""

from __future__ import annotations

from rich.text import Text

LIGHTS = {
    "green": ("●", "UP", "$success"),
    "yellow": ("▲", "SLOW", "$warning"),
    "red": ("✖", "DOWN", "$error"),
    "blue": ("◆", "RESOLVED", "$accent"),
}
PROXY_STATES = {"up": "green", "slow": "yellow", "down": "red"}


def light_text(light: str, styles: dict[str, str]) -> Text:
    """``● UP`` etc.; ``styles`` is ``app.theme_variables`` (names without the ``$``)."""
    glyph, word, variable = LIGHTS.get(light, ("?", light.upper(), "$foreground"))
    colour = styles.get(variable.removeprefix("$"), "")
    return Text(f"{glyph} {word}", style=f"bold {colour}".strip())


def proxy_text(state: str, styles: dict[str, str]) -> Text:
    return light_text(PROXY_STATES.get(state, state), styles)
