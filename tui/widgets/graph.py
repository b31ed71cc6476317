"""A small live graph: one title line over a textual-plotext plot, sized for 80×24.

The widget takes whole series (the page re-sends them on every fetch) and downsamples
them to about two points per plot column, because plotext draws every point it is given
and a 900-sample window in a 40-column plot is mostly wasted work. Time labels are
formatted here (UTC clock times of the samples), never by plotext, so a frozen data set
renders the same picture every time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult, RenderResult
from textual.color import Color, ColorParseError
from textual.containers import Vertical
from textual.geometry import Size
from textual.widgets import Static
from textual_plotext import PlotextPlot

POINTS_PER_COLUMN = 2


@dataclass(frozen=True)
class Series:
    """One line of a graph; ``None`` values are gaps (e.g. no gets, so no hit rate)."""

    label: str
    values: Sequence[float | None]
    color: str = "primary"  # a theme variable, without the "$"


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


def _digits(value: float) -> str:
    """Three significant digits, never in exponent form (1000, not 1e+03)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def compact(value: float) -> str:
    """Short axis/title numbers: 0, 7, 2.5, 12, 1.2k, 3.4M."""
    magnitude = abs(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= scale:
            return f"{_digits(value / scale)}{suffix}"
    if magnitude >= 10 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.2g}"


def short_bytes(value: float) -> str:
    """Short byte sizes for axes: 0, 512B, 12K, 1.5M, 2G."""
    for scale, suffix in ((1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")):
        if value >= scale:
            return f"{_digits(value / scale)}{suffix}"
    return f"{value:.0f}B" if value else "0"


def percent(value: float) -> str:
    return f"{value:.0f}%"


def nice_ceiling(value: float, base: int = 10) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k (times a power of ``base`` when it is 1024) at or
    above ``value``: clean axis tops, e.g. 27 → 50 and, in bytes, 434 KiB → 500 KiB."""
    if value <= 0:
        return 1.0
    unit = 1.0
    if base != 10:
        while value / unit >= base:
            unit *= base
    scaled = value / unit
    decade = 10.0 ** math.floor(math.log10(scaled))
    top = next(step * decade for step in (1, 2, 2.5, 5, 10) if scaled <= step * decade * 1.000001)
    if base != 10:
        top = min(top, base)  # 1023 B → 1K, not 2000 B
    return top * unit


def downsample(
    times: Sequence[float], values: Sequence[float | None], buckets: int
) -> tuple[list[float], list[float]]:
    """At most ``buckets`` points: the mean of each run of consecutive samples, placed at the
    run's last time. ``None`` values are skipped and a run of only ``None`` is dropped."""
    count = min(len(times), len(values))
    if count <= buckets:
        pairs = [(t, v) for t, v in zip(times[:count], values[:count], strict=True)
                 if v is not None]  # fmt: skip
        return [t for t, _ in pairs], [float(v) for _, v in pairs]
    xs: list[float] = []
    ys: list[float] = []
    step = count / buckets
    for bucket in range(buckets):
        low, high = int(bucket * step), int((bucket + 1) * step)
        chunk = [v for v in values[low:high] if v is not None]
        if chunk:
            xs.append(times[high - 1])
            ys.append(sum(chunk) / len(chunk))
    return xs, ys


def time_labels(start: float, end: float, count: int) -> tuple[list[float], list[str]]:
    """``count`` evenly spaced ticks between two unix times, labelled in UTC."""
    span = end - start
    if span >= 86400:
        pattern = "%m-%d %H:%M"
    elif span >= 3600:
        pattern = "%H:%M"
    else:
        pattern = "%H:%M:%S"
    if span <= 0 or count < 2:
        return [end], [time.strftime(pattern, time.gmtime(end))]
    ticks = [start + span * i / (count - 1) for i in range(count)]
    return ticks, [time.strftime(pattern, time.gmtime(t)) for t in ticks]


def latest(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


class CachedPlot(PlotextPlot):
    """PlotextPlot rebuilds the whole plot on every repaint of the screen; this one rebuilds
    only when its data (``version``) or its size changed, and reuses the text otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0
        self._built: tuple[tuple[int, Size], RenderResult] | None = None

    def render(self) -> RenderResult:
        key = (self.version, self.size)
        if self._built is None or self._built[0] != key:
            self._built = (key, super().render())
        return self._built[1]


class Graph(Vertical):
    """A titled plot of one or more series over shared sample times.

    ``y_min``/``y_max`` fix the vertical range (``None``: from the data, at least
    ``y_floor`` so an idle cache draws a flat line at the bottom rather than noise).
    """

    DEFAULT_CSS = """
    Graph {
        height: 1fr;
        min-height: 3;
        background: $surface;
    }
    Graph > .graph--title {
        height: 1;
        width: 1fr;
        padding: 0 1;
        background: $panel;
    }
    Graph > PlotextPlot {
        height: 1fr;
        padding-left: 1;
    }
    """

    def __init__(
        self,
        title: str,
        *,
        fmt: Callable[[float], str] = compact,
        y_min: float | None = 0.0,
        y_max: float | None = None,
        y_floor: float = 1.0,
        y_base: int = 10,
        id: str | None = None,  # noqa: A002 - Textual's own name for it
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.fmt = fmt
        self.y_min = y_min
        self.y_max = y_max
        self.y_floor = y_floor
        self.y_base = y_base  # 1024 for byte sizes, so the top label reads 500K, not 488K
        self.times: Sequence[float] = ()
        self.series: tuple[Series, ...] = ()
        self.summary: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title, style="bold"), classes="graph--title")
        yield CachedPlot()

    def on_mount(self) -> None:
        plt = self.query_one(CachedPlot).plt
        plt.frame(False)  # axes cost two rows and two columns; a 5-row plot cannot spare them
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._draw())

    def on_resize(self) -> None:
        self._draw()

    def set_data(self, times: Sequence[float], *series: Series, summary: str | None = None) -> None:
        """Show these series (oldest first, aligned with ``times``); ``summary`` replaces the
        latest value(s) shown after the title."""
        self.times, self.series, self.summary = times, series, summary
        self._draw()

    # -- drawing ------------------------------------------------------------------------
    def _colour(self, variable: str) -> tuple[int, int, int] | str:
        colour = theme_colour(self.app, variable)
        return Color.parse(colour).rgb if colour else "default"

    def _title(self) -> Text:
        title = Text(self.title, style="bold")
        if self.summary is not None:
            title.append(f"  {self.summary}")
            if len(self.series) < 2:
                return title
        for series in self.series:
            value = latest(series.values)
            shown = "—" if value is None else self.fmt(value)
            if len(self.series) > 1:
                title.append("  ━", style=theme_colour(self.app, series.color))
                title.append(f" {series.label} {shown}")
            elif self.summary is None:
                title.append(f"  {shown}")
        return title

    def _draw(self) -> None:
        if not self.is_mounted:
            return
        # A fixed one-line title: updating it needs no layout pass (the costly part of a tick).
        self.query_one(".graph--title", Static).update(self._title(), layout=False)
        plot = self.query_one(CachedPlot)
        plot.version += 1
        plt = plot.plt
        plt.clear_data()
        width = plot.size.width or self.size.width or 40
        buckets = max(2, width * POINTS_PER_COLUMN)
        times = list(self.times)
        high = self.y_floor
        low = 0.0
        plotted = False
        for series in self.series:
            xs, ys = downsample(times, series.values, buckets)
            if not xs:
                continue
            plotted = True
            high, low = max(high, *ys), min(low, *ys)
            plt.plot(xs, ys, marker="braille", color=self._colour(series.color))
        y_min = low if self.y_min is None else self.y_min
        y_max = nice_ceiling(high, self.y_base) if self.y_max is None else self.y_max
        plt.ylim(y_min, y_max)
        plt.yticks([y_min, y_max], [self.fmt(y_min), self.fmt(y_max)])
        if plotted and times:
            ticks, labels = time_labels(times[0], times[-1], max(2, min(5, (width + 4) // 13)))
            plt.xlim(times[0], times[-1] if times[-1] > times[0] else times[0] + 1)
            plt.xticks(ticks, labels)
        else:
            plt.xticks([], [])
        plot.refresh()
