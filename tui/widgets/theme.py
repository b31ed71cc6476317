"""Theme colours for the Rich text the pages build themselves."""

from __future__ import annotations

from textual.app import App
from textual.color import Color, ColorParseError


def theme_colour(app: App, variable: str) -> str:
    """A theme variable (name without "$") as a Rich colour: translucent ones blended onto
    the background, since Rich has no alpha; "" when the variable is not a colour."""
    variables = app.theme_variables
    try:
        colour = Color.parse(variables[variable])
        if colour.a < 1:
            colour = Color.parse(variables.get("background", "black")) + colour
    except (KeyError, ColorParseError):
        return ""
    return colour.hex
