"""Status as glyph + word + colour, so it reads without colour too (NO_COLOR, colour-blind).

The colours are the product's promise, not the theme's taste: UP green, SLOW yellow, DOWN
red, RESOLVED blue. Themes disagree with that (textual-dark's ``$warning`` and ``$accent``
are the same amber, rose-pine's ``$success`` is teal, solarized's ``$warning`` is orange),
so the four hues are defined here, once, and the app publishes them as theme variables
(``$status-up`` …, see ``status_variables``): a lighter shade of each on dark themes and a
darker one on light themes, both readable on the theme's background. The ANSI themes get
them too: a terminal's own "green" is often olive and its "yellow" orange.
"""

from __future__ import annotations

from rich.text import Text
from textual.color import Color, ColorParseError
from textual.theme import Theme

# light -> (glyph, word, theme variable)
LIGHTS = {
    "green": ("●", "UP", "status-up"),
    "yellow": ("▲", "SLOW", "status-slow"),
    "red": ("✖", "DOWN", "status-down"),
    "blue": ("◆", "RESOLVED", "status-resolved"),
}
PROXY_STATES = {"up": "green", "slow": "yellow", "down": "red"}

# light -> (on dark themes, on light themes); each at least 3:1 against the background and
# the surface of every built-in theme of its kind (tests/tui/test_status_lights.py).
HUES = {
    "green": ("#3fb950", "#116329"),
    "yellow": ("#e3c000", "#7a6000"),
    "red": ("#ff6e64", "#b3121f"),
    "blue": ("#58a6ff", "#0550ae"),
}


def status_variables(theme: Theme) -> dict[str, str]:
    """The four status colours as theme variables for ``theme`` (a theme may override them
    through its own ``variables``)."""
    return {LIGHTS[light][2]: hues[0 if theme.dark else 1] for light, hues in HUES.items()}


def light_text(light: str, styles: dict[str, str]) -> Text:
    """``● UP`` etc.; ``styles`` is ``app.theme_variables`` (names without the ``$``)."""
    glyph, word, variable = LIGHTS.get(light, ("?", light.upper(), "foreground"))
    return Text(f"{glyph} {word}", style=f"bold {_rich_colour(styles.get(variable, ''))}".strip())


def proxy_text(state: str, styles: dict[str, str]) -> Text:
    return light_text(PROXY_STATES.get(state, state), styles)


def _rich_colour(value: str) -> str:
    """A theme value as a Rich colour (a theme may override a status variable with any
    colour Textual parses, "ansi_green" too, which Rich calls "color(2)")."""
    try:
        return Color.parse(value).rich_color.name if value else ""
    except ColorParseError:
        return ""
