"""Graphs: clock-aligned buckets, and a plot rebuilt only when a bucket completes.

The pure functions are checked on hand-made numbers; the redraw rule is checked on the real
Analytics page, fed the same messages its fetch worker posts.
"""

from __future__ import annotations

import time

import pytest

from backend.api.schemas import Sample, StatsOut
from tui import sample_data as data
from tui.messages import AnalyticsFetched
from tui.screenshots import frozen_app, show
from tui.series import History
from tui.widgets.graph import (
    CachedPlot,
    Graph,
    bucket_means,
    bucket_size,
    duration_us,
    grid_end,
    time_labels,
)


def test_bucket_means_average_each_clock_bucket_and_leave_gaps() -> None:
    times = [100.0, 101.0, 104.0, 105.0, 112.0, 121.0]
    values = [1.0, 3.0, None, 10.0, None, 7.0]
    # [100,105): 1, 3 -> 2; [105,110): 10; [110,115): only None -> gap; [115,120): empty
    assert bucket_means(times, values, 100.0, 120.0, 5.0) == ([102.5, 107.5], [2.0, 10.0])
    # samples outside [start, end) are ignored: 121 is in the bucket still filling
    assert bucket_means(times, values, 105.0, 110.0, 5.0) == ([107.5], [10.0])
    assert bucket_means([], [], 0.0, 10.0, 5.0) == ([], [])


def test_peak_buckets_keep_their_largest_value() -> None:
    """A p99 or a maximum averaged over a bucket would hide the slow second."""
    times = [100.0, 101.0, 102.0, 105.0, 106.0]
    values = [30.0, 40_000.0, None, None, 25.0]
    assert bucket_means(times, values, 100.0, 110.0, 5.0, peak=True) == (
        [102.5, 107.5],
        [40_000.0, 25.0],
    )


def test_durations_read_in_their_unit() -> None:
    assert [duration_us(v) for v in (8, 38, 610, 1000, 2061, 40_150, 1_500_000)] == [
        "8µs",
        "38µs",
        "610µs",
        "1ms",
        "2.06ms",
        "40.1ms",
        "1.5s",
    ]


def test_grid_end_is_the_start_of_the_bucket_still_filling() -> None:
    assert grid_end([3.0, 19.9], 10.0) == 10.0
    assert grid_end([3.0, 20.0], 10.0) == 20.0
    assert grid_end([], 10.0) == 0.0


def test_bucket_size_is_a_clock_step_that_fits_the_columns() -> None:
    assert bucket_size(600.0, 76) == 10.0  # 80x24: two points per column of a 38-cell plot
    assert bucket_size(600.0, 120) == 5.0
    assert bucket_size(600.0, 600) == 1.0
    assert 600.0 / bucket_size(600.0, 7) <= 7


def test_time_labels_fall_on_round_minutes() -> None:
    start = 1_795_000_007.0  # 12:26:47 UTC... not round
    ticks, labels = time_labels(start, start + 600, 4)
    assert all(t % 180 == 0 for t in ticks) and start <= ticks[0] and ticks[-1] <= start + 600
    assert labels == [time.strftime("%H:%M", time.gmtime(t)) for t in ticks]
    assert 2 <= len(ticks) <= 4
    ticks, labels = time_labels(start, start + 40, 4)  # a short span: seconds
    assert all(t % 15 == 0 for t in ticks) and len(labels[0]) == 8


def sample(t: float, gets: int, hits: int, evictions: int = 0) -> Sample:
    return Sample(
        t=t,
        memory_used=1000,
        memory_limit=10_000,
        items=5,
        get_hits=hits,
        get_misses=gets - hits,
        hit_rate=hits / gets if gets else None,
        cmd_get=gets,
        cmd_set=gets // 10,
        cmd_delete=0,
        cmd_flush=0,
        evictions=evictions,
        curr_connections=2,
        bytes_read=0,
        bytes_written=0,
    )


def test_history_derives_rates_once_and_keeps_its_window() -> None:
    history = History(keep_s=10.0)
    history.replace([sample(100.0, 0, 0), sample(102.0, 40, 30)])
    assert history.gets == [None, 20.0]  # 40 gets in 2 s
    history.extend([sample(103.0, 10, 5)])  # the counter went back: a restart, no rate
    assert history.gets[-1] is None
    history.extend([sample(104.0, 30, 20), sample(111.0, 100, 90)])
    assert history.t == [102.0, 103.0, 104.0, 111.0]  # 100 is more than 10 s before 111
    assert [len(c) for c in history._columns()] == [4] * 12
    assert history.gets == [20.0, None, 20.0, 10.0]
    assert history.hit_rate(7.0) == pytest.approx((90 - 20) / (100 - 30))
    history.replace([])
    assert history.last is None and history.hit_rate(60.0) is None


def stats_between(first: int, last: int) -> StatsOut:
    """The sample data's samples number ``first`` to ``last`` (one a second from T0)."""
    return StatsOut(interval_s=1.0, samples=data.stats(last + 1).samples[first:])


async def test_a_refresh_rebuilds_the_plots_only_when_a_bucket_completes() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        # T0 is a multiple of 10 s: samples 0..655 end inside the bucket [T0+650, T0+660)
        await show(pilot, "analytics", AnalyticsFetched(data.cache_info(), stats_between(0, 655)))
        graphs = list(app.screen.query(Graph))
        plots = [g.query_one(CachedPlot) for g in graphs]
        assert bucket_size(600.0, plots[0].size.width * 2) == 10.0
        builds = [p.builds for p in plots]
        assert builds == [1] * 7  # built once, at the laid-out size: not also at a guessed one
        ops_title = str(app.screen.query_one("#graph-ops .graph--title").render())

        async def append(first: int, last: int) -> None:
            since = data.T0 + first - 1
            message = AnalyticsFetched(data.cache_info(), stats_between(first, last), since)
            app.screen.post_message(message)
            await pilot.pause()
            await pilot.pause()

        await append(656, 658)  # still inside the bucket that is filling
        assert [p.builds for p in plots] == builds  # no plot rebuilt
        assert str(app.screen.query_one("#graph-ops .graph--title").render()) != ops_title

        await append(659, 660)  # T0+660 starts a new bucket: [T0+650, T0+660) is complete
        assert [p.builds for p in plots] == [b + 1 for b in builds]

        app.theme = "textual-light"  # the series' colours come from the theme
        await pilot.pause()
        await pilot.pause()
        assert [p.builds for p in plots] == [b + 2 for b in builds]


@pytest.mark.parametrize(
    ("samples", "start", "end"),
    [
        (45, -20.0, 40.0),  # seconds old: the axis spans its minimum, a minute
        (200, 0.0, 190.0),  # minutes old: the axis starts at the first bucket
        (660, 50.0, 650.0),  # older than the window: the last ten minutes
    ],
)
async def test_a_young_history_spans_the_whole_graph(
    samples: int, start: float, end: float
) -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(
            pilot, "analytics", AnalyticsFetched(data.cache_info(), stats_between(0, samples - 1))
        )
        graph = app.screen.query_one("#graph-items", Graph)
        size = graph.query_one(CachedPlot).size
        assert graph.time_grid(size) == (10.0, data.T0 + start, data.T0 + end)


async def test_the_latency_graph_spans_the_page_with_its_three_lines() -> None:
    """At 80×24 the latency graph takes the last row of the grid, whole width, and its
    title shows the newest p50, p99 and max in their units."""
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "analytics", AnalyticsFetched(data.cache_info(), data.stats()))
        latency = app.screen.query_one("#graph-latency", Graph)
        memory = app.screen.query_one("#graph-memory", Graph)
        assert latency.size.width > 2 * memory.size.width - 2
        assert latency.size.height >= 6  # title, four rows of plot, the time labels
        last = data.stats().samples[-1]
        title = str(latency.query_one(".graph--title").render())
        assert f"p50 {duration_us(last.latency_p50_us or 0)}" in title
        assert f"p99 {duration_us(last.latency_p99_us or 0)}" in title
        assert f"max {duration_us(last.latency_max_us or 0)}" in title
        labels = str(latency.query_one(CachedPlot).render())
        assert "10µs" in labels and "20ms" in labels  # a log axis: decade to clean ceiling
