"""Theme colours for the Rich text the pages build themselves."""

from __future__ import annotations

from textual.app import App
from textual.color import Color, ColorParseError

MIN_CONTRAST = 3.0  # WCAG's floor for graphics and large text: a graph's line, its legend


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


def readable_colour(
    app: App,
    variable: str,
    grounds: tuple[str, ...] = ("surface", "panel"),
    minimum: float = MIN_CONTRAST,
) -> str:
    """``theme_colour`` moved towards the theme's foreground until it has ``minimum``
    contrast on each of the ``grounds`` variables, as the terminal will show it: under
    NO_COLOR Textual greys every colour, and a dark hue that stood out by colour alone
    (textual-dark's ``$secondary``, the ops graph's "sets" line) became a grey of 1.4:1.
    A graph's line (on ``$surface``) and its legend (on ``$panel``) get the same colour."""
    colour = theme_colour(app, variable)
    backgrounds = [theme_colour(app, ground) for ground in grounds]
    if not colour or not all(backgrounds):
        return colour
    seen = (lambda c: c.monochrome) if getattr(app, "no_color", False) else (lambda c: c)
    original = Color.parse(colour)
    seen_grounds = [seen(Color.parse(background)) for background in backgrounds]
    towards = Color.parse(theme_colour(app, "foreground") or "#808080")
    adjusted = original
    for step in range(1, 11):
        if min(contrast(seen(adjusted), ground) for ground in seen_grounds) >= minimum:
            break
        adjusted = original.blend(towards, step / 10)
    return adjusted.hex


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""

    def luminance(colour: Color) -> float:
        def linear(channel: int) -> float:
            c = channel / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

        r, g, b = colour.rgb
        return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)
