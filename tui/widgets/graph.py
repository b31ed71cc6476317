"""A small live graph: one title line over a textual-plotext plot, sized for 80×24.

The widget takes whole series (the page re-sends them on every fetch) and averages them
into buckets of a fixed time grid, at most two per plot column (braille has two dots a
cell), because plotext draws every point it is given and a 600-sample window in a
40-column plot is mostly wasted work.

Only completed buckets are plotted. The grid is aligned to the clock, so a completed
bucket never changes: the plot is rebuilt once per bucket (every 10 s at 80 columns),
not on every refresh, while the title line shows the newest value every time. Rebuilding
six plotext figures a second was most of the dashboard's idle CPU.

Time labels are formatted here (UTC clock times), never by plotext, so a frozen data set
renders the same picture every time.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.color import Color
from textual.containers import Vertical
from textual.geometry import Size
from textual_plotext import Plot, PlotextPlot

from tui.widgets.line import FixedLine
from tui.widgets.theme import readable_colour

POINTS_PER_COLUMN = 2
MIN_SPAN_S = 60.0  # the shortest time axis, for a history only seconds old


@dataclass(frozen=True)
class Series:
    """One line of a graph; ``None`` values are gaps (e.g. no gets, so no hit rate)."""

    label: str
    values: Sequence[float | None]
    color: str = "primary"  # a theme variable, without the "$"
    # A bucket of samples is drawn as their mean, or (``peak``) their largest: a p99 or a
    # maximum averaged over ten seconds would hide the slow second it is there to show.
    peak: bool = False


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


def duration_us(value: float) -> str:
    """Microseconds as a person reads them: 38µs, 610µs, 2.1ms, 40ms, 1.5s."""
    for scale, suffix in ((1e6, "s"), (1e3, "ms")):
        if value >= scale:
            return f"{_digits(value / scale)}{suffix}"
    return f"{_digits(value)}µs"


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


def grid_end(times: Sequence[float], bucket_s: float) -> float:
    """Start of the bucket the newest sample falls in: everything before it is final."""
    return math.floor(times[-1] / bucket_s) * bucket_s if times else 0.0


def bucket_means(
    times: Sequence[float],
    values: Sequence[float | None],
    start: float,
    end: float,
    bucket_s: float,
    peak: bool = False,
) -> tuple[list[float], list[float]]:
    """The mean (``peak``: the largest) of the samples in each ``bucket_s`` bucket of
    [start, end), placed at the bucket's middle. ``times`` are ascending; ``None`` values
    are skipped, and a bucket with no value is left out (a gap)."""
    xs: list[float] = []
    ys: list[float] = []
    low, high = bisect_left(times, start), bisect_left(times, end)
    bucket, total, count = -1, 0.0, 0
    for t, v in zip(times[low:high], values[low:high], strict=False):
        index = int((t - start) // bucket_s)
        if index != bucket:
            if count:
                xs.append(start + (bucket + 0.5) * bucket_s)
                ys.append(total if peak else total / count)
            bucket, total, count = index, 0.0, 0
        if v is not None:
            if not peak:
                total += v
            elif not count or v > total:
                total = v
            count += 1
    if count:
        xs.append(start + (bucket + 0.5) * bucket_s)
        ys.append(total if peak else total / count)
    return xs, ys


BUCKET_STEPS_S = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1800, 3600, 7200, 21600)


def bucket_size(window_s: float, max_buckets: int) -> float:
    """The shortest clock-friendly bucket (10 s, not 7.9 s) that fits the window into
    ``max_buckets`` buckets."""
    return next(
        (float(step) for step in BUCKET_STEPS_S if window_s / step <= max_buckets),
        window_s / max_buckets,
    )


def time_labels(start: float, end: float, max_labels: int) -> tuple[list[float], list[str]]:
    """Ticks at round UTC clock times between two unix times (every 3 minutes, say), as
    many as fit; labelled HH:MM when they fall on whole minutes."""
    span = end - start
    step = next((s for s in TICK_STEPS_S if span / s < max(1, max_labels)), TICK_STEPS_S[-1])
    first = math.ceil(start / step) * step
    ticks: list[float] = [first + step * i for i in range(int((end - first) // step) + 1)]
    pattern = "%H:%M" if step % 60 == 0 else "%H:%M:%S"
    if span >= 86400:
        pattern = "%m-%d " + pattern
    return ticks, [time.strftime(pattern, time.gmtime(t)) for t in ticks]


def latest(values: Sequence[float | None]) -> float | None:
    return next((v for v in reversed(values) if v is not None), None)


class CachedPlot(PlotextPlot):
    """A plot whose figure is filled and built at render time, for the size it is rendered
    at, and only when ``key(size)`` changed since the last build. PlotextPlot rebuilds on
    every repaint; filling the figure before layout had also built it twice, once at a
    guessed size, on the dashboard's first frame."""

    def __init__(self, key: Callable[[Size], Hashable], fill: Callable[[Plot, Size], None]):
        super().__init__()
        self._key = key
        self._fill = fill
        self._built: tuple[Hashable, RenderResult] | None = None
        self.builds = 0  # figures built so far (each costs a few ms of plotext)

    def _wanted(self) -> Hashable:
        return self._key(self.size), self.size

    def stale(self) -> bool:
        return self._built is None or self._built[0] != self._wanted()

    def render(self) -> RenderResult:
        built = self._built
        if built is None or built[0] != self._wanted():  # stale()
            self.plt.clear_data()
            self._fill(self.plt, self.size)
            built = self._built = (self._wanted(), super().render())
            self.builds += 1
        return built[1]


class Graph(Vertical):
    """A titled plot of one or more series over shared sample times.

    ``y_min``/``y_max`` fix the vertical range (``None``: from the data, at least
    ``y_floor`` so an idle cache draws a flat line at the bottom rather than noise).
    ``log_scale``: a logarithmic axis from the decade at or below the lowest value to the one at
    or above the highest (at least ``y_floor``), for series that differ by orders of
    magnitude (latency: a p50 of 40 µs under a max of 20 ms).
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
        log_scale: bool = False,
        window_s: float = 600.0,
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
        self.log_scale = log_scale
        self.window_s = window_s  # the x axis: this many seconds up to the newest bucket
        self.times: Sequence[float] = ()
        self.series: tuple[Series, ...] = ()
        self.summary: str | None = None
        self.source: object = None
        self._theme_changes = 0

    def compose(self) -> ComposeResult:
        yield FixedLine(Text(self.title, style="bold"), classes="graph--title")
        yield CachedPlot(self._plot_key, self._plot)

    def on_mount(self) -> None:
        plt = self.query_one(CachedPlot).plt
        plt.frame(False)  # axes cost two rows and two columns; a 5-row plot cannot spare them
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        self._theme_changes += 1  # the series' colours come from the theme
        self._draw()

    def set_data(
        self,
        times: Sequence[float],
        *series: Series,
        summary: str | None = None,
        source: object = None,
    ) -> None:
        """Show these series (oldest first, aligned with ascending ``times``); ``summary``
        replaces the latest value(s) shown after the title. ``source`` names what the data
        is of (a cache): later data of the same source only adds samples, so the completed
        buckets already plotted stay as they are."""
        self.times, self.series, self.summary, self.source = times, series, summary, source
        self._draw()

    # -- drawing ------------------------------------------------------------------------
    def _colour(self, variable: str) -> tuple[int, int, int] | str:
        colour = readable_colour(self.app, variable)
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
                title.append("  ━", style=readable_colour(self.app, series.color))
                title.append(f" {series.label} {shown}")
            elif self.summary is None:
                title.append(f"  {shown}")
        return title

    def _draw(self) -> None:
        """The title always; the plot only when what it shows changed (see ``_plot_key``)."""
        if not self.is_mounted:
            return
        self.query_one(FixedLine).show(self._title())
        plot = self.query_one(CachedPlot)
        if plot.stale():
            plot.refresh()

    def time_grid(self, size: Size) -> tuple[float, float, float]:
        """Bucket length, start and end of the time axis drawn at this plot size. A history
        younger than the window starts the axis at its first bucket (but spans at least
        ``MIN_SPAN_S``), so a new cache's line crosses the graph instead of sitting in its
        last columns; the buckets stay those of the full window, so this costs no rebuild."""
        bucket_s = bucket_size(self.window_s, max(2, (size.width or 40) * POINTS_PER_COLUMN))
        end = grid_end(self.times, bucket_s)
        start = end - self.window_s
        if self.times:
            first = math.floor(self.times[0] / bucket_s) * bucket_s
            start = max(start, min(first, end - MIN_SPAN_S))
        return bucket_s, start, end

    def _plot_key(self, size: Size) -> Hashable:
        """Changes when a bucket completes, the source or the theme changes: samples of the
        same source that fall in the bucket still filling change nothing drawn."""
        _, start, end = self.time_grid(size)
        count = bisect_left(self.times, end) - bisect_left(self.times, start)
        return self.source, end, count, len(self.series), self._theme_changes

    def _plot(self, plt: Plot, size: Size) -> None:
        bucket_s, start, end = self.time_grid(size)
        high = self.y_floor
        low = 0.0
        plotted = False
        lines = []
        for series in self.series:
            xs, ys = bucket_means(self.times, series.values, start, end, bucket_s, series.peak)
            if xs:
                lines.append((xs, ys, series.color))
        if self.log_scale:
            self._plot_log(plt, lines, (start, end), size)
            return
        for xs, ys, colour in lines:
            plotted = True
            high, low = max(high, *ys), min(low, *ys)
            plt.plot(xs, ys, marker="braille", color=self._colour(colour))
        y_min = low if self.y_min is None else self.y_min
        y_max = nice_ceiling(high, self.y_base) if self.y_max is None else self.y_max
        plt.ylim(y_min, y_max)
        plt.yticks([y_min, y_max], [self.fmt(y_min), self.fmt(y_max)])
        if plotted:
            plt.xlim(start, end)
            plt.xticks(*time_labels(start, end, max(2, (size.width + 3) // 9)))
        else:
            plt.xticks([], [])

    def _plot_log(
        self,
        plt: Plot,
        lines: list[tuple[list[float], list[float], str]],
        span: tuple[float, float],
        size: Size,
    ) -> None:
        """The lines on a log10 axis from the decade at or below the lowest value to a
        clean ceiling (``nice_ceiling``) of the highest, labelled at both ends."""
        values = [y for _, ys, _ in lines for y in ys if y > 0]
        floor = max(self.y_floor, 1e-9)
        bottom = 10.0 ** math.floor(math.log10(min(values, default=floor)))
        top = max(nice_ceiling(max(values, default=floor)), bottom * 10)
        low, high = math.log10(bottom), math.log10(top)
        for xs, ys, colour in lines:
            logs = [math.log10(max(y, bottom)) for y in ys]
            plt.plot(xs, logs, marker="braille", color=self._colour(colour))
        plt.ylim(low, high)
        plt.yticks([low, high], [self.fmt(bottom), self.fmt(top)])
        if lines:
            plt.xlim(*span)
            plt.xticks(*time_labels(*span, max(2, (size.width + 3) // 9)))
        else:
            plt.xticks([], [])
