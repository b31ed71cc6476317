"""The Status page at 80×24: every proxy of every cluster, its latency and its usual one,
and every incident's whole cause are on the screen (wrapped, never cut)."""

from __future__ import annotations

from textual.widgets import DataTable

from tests.tui.screen import screen_lines
from tui import sample_data as data
from tui.messages import StatusFetched
from tui.screenshots import frozen_app, show


def rows_of(lines: list[str], name: str) -> str:
    """A table row that starts with ``name`` and its continuation lines, as one string."""
    start = next(i for i, line in enumerate(lines) if line[1:].startswith(name + " "))
    row = [lines[start]]
    for line in lines[start + 1 :]:
        if line[:12].strip():  # the next row
            break
        row.append(line)
    return " ".join(" ".join(row).split())


async def test_every_proxy_and_its_usual_latency_fit_at_80_columns() -> None:
    status = data.status()
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", StatusFetched(status))
        lines = screen_lines(app)
    assert "latency ms (usual)" in "\n".join(lines)
    for region in status.regions:
        for cluster in region.clusters:
            row = rows_of(lines, cluster.name)
            for proxy in cluster.proxies:
                short = proxy.hostname.split(".")[0].replace("proxy-", "p")
                assert f"{short} " in row, (cluster.name, short, row)
                assert f"({proxy.baseline_ms:.1f})" in row, row
    assert "p1 ▲ SLOW 212 (0.4) [+200ms] p2 ● UP 0.4 (0.4) p3 ● UP 0.4 (0.4)" in rows_of(
        lines, "use1-b"
    )
    assert "p1 ✖ DOWN — (0.4) [fault]" in rows_of(lines, "use1-c")


async def test_incident_causes_wrap_with_short_proxy_names() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", StatusFetched(data.status()))
        lines = screen_lines(app)
    incidents = lines[next(i for i, line in enumerate(lines) if "Recent incidents" in line) :]
    text = " ".join(" ".join(incidents).split())
    for cause in (
        "1 of 3 proxies unreachable: p1",
        "slower than usual: p1 (212.5 ms, usually 0.4 ms)",
        "recently resolved: every proxy answers normally again",
    ):
        assert cause in text, (cause, incidents)
    assert "Nov 18 08:05" in text


async def test_rows_rewrap_when_the_terminal_widens() -> None:
    """At 120 columns the slow cluster's proxies are back on one line."""
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", StatusFetched(data.status()))
        assert not screen_lines(app)[6][:20].strip()  # use1-b's second line
        await pilot.resize_terminal(120, 36)
        await pilot.pause()
        await pilot.pause()
        lines = screen_lines(app)
        slow = next(i for i, line in enumerate(lines) if line.startswith(" use1-b"))
        assert "p3 ● UP" in lines[slow] and lines[slow + 1].startswith(" use1-c")


async def test_a_row_growing_a_line_keeps_the_cursor_on_its_cluster() -> None:
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", StatusFetched(data.status()))
        table = app.screen.query_one("#clusters", DataTable)
        table.move_cursor(row=table.get_row_index("cluster:euw1-a"))
        worse = data.status()
        worse.regions[0].clusters[0].proxies[0].state = "down"  # use1-a needs a second line
        app.screen.post_message(StatusFetched(worse))
        await pilot.pause()
        await pilot.pause()
        assert table.get_row_height("cluster:use1-a") == 2
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        assert key == "cluster:euw1-a"


async def test_the_feed_line_follows_the_highlighted_cluster_or_region() -> None:
    """A user subscribes to the cluster their caches are on: moving the cursor to a row
    shows that row's feed, whole, at 80 columns."""
    app = frozen_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await show(pilot, "status", StatusFetched(data.status()))
        app.screen.query_one("#clusters", DataTable).focus()

        def feed_line() -> str:
            return next(line for line in screen_lines(app) if "RSS feed" in line)

        assert "RSS feed (us-east-1): " in feed_line()
        assert "/status.rss?region=us-east-1" in feed_line()
        await pilot.press("down", "down")  # us-east-1 -> use1-a -> use1-b
        assert "RSS feed (use1-b): " in feed_line()
        assert feed_line().rstrip().endswith("/status.rss?cluster=use1-b")
