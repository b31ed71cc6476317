"""backend.tsdb: a compressed Series reads back exactly what a plain list of rows holds."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.tsdb import Series, Timeline, decode, decode_flat, encode, last_row

WIDTH = 3
values = st.integers(min_value=0, max_value=2**60)


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, tuple[int, ...]]]]:
    """(capacity, chunk size, [(slot step, row)]): runs of equal rows, gaps, big jumps."""
    capacity = draw(st.integers(1, 300))
    size = draw(st.sampled_from([1, 2, 8, 64]))
    steps = []
    row = tuple(draw(values) for _ in range(WIDTH))
    for _ in range(draw(st.integers(1, 400))):
        kind = draw(st.sampled_from(["same", "same", "small", "any"]))
        if kind == "small":
            row = tuple(max(0, v + draw(st.integers(-5, 1000))) for v in row)
        elif kind == "any":
            row = tuple(draw(values) for _ in range(WIDTH))
        step = draw(st.sampled_from([1, 1, 1, 1, 2, 3, 70, 1000]))
        steps.append((step, row))
    return capacity, size, steps


@settings(max_examples=60, deadline=None)
@given(histories(), st.data())
def test_series_reads_back_the_last_rows_of_a_list(history, data) -> None:
    capacity, size, steps = history
    timeline = Timeline(size)
    fine = Series(WIDTH, capacity, size)  # times from the timeline
    coarse = Series(WIDTH, capacity, size, resolution=60.0, dod=True)  # times = slot x 60
    # LZMA chunks, open rows parked 4 at a time as one part
    dense = Series(WIDTH, capacity, size, resolution=60.0, dod=True, dense=True)
    kept: list[tuple[int, float, tuple[int, ...]]] = []
    slot = data.draw(st.integers(0, 10**6))
    for i, (step, row) in enumerate(steps):
        for _ in range(step):  # ticks where this series had no sample
            tick = timeline.record(1000.0 + timeline.ticks * 1.0001)
        fine.append(tick, row, timeline.block)
        slot += step
        coarse.append(slot, row)
        dense.append(slot, row)
        kept.append((tick, timeline.block[tick % size], row))
        if i % 37 == 0 or i == len(steps) - 1:
            n = data.draw(st.integers(1, capacity + 5))
            last = kept[-min(n, capacity) :]
            before = kept[-len(last) - 1][2] if len(kept) > len(last) else None
            assert fine.read(n) == (
                [k[0] for k in last],
                [k[1] for k in last],
                [k[2] for k in last],
                before,
            )
            slots, times, rows, was = coarse.read(n)
            assert rows == [k[2] for k in last] and was == before
            assert times == [s * 60.0 for s in slots]
            assert dense.read(n) == (slots, times, rows, was)
            assert len(fine) == len(coarse) == len(dense) == min(capacity, len(kept))


@given(
    st.lists(st.tuples(values, st.integers(-(2**40), 2**40)), min_size=1, max_size=200),
    st.booleans(),
    st.booleans(),
)
def test_encode_decode_round_trip(rows: list[tuple[int, int]], dod: bool, dense: bool) -> None:
    flat = [v for row in rows for v in row]
    data = encode(flat, 2, dod, dense)
    assert decode(data, len(rows), 2, dod, dense) == rows
    assert decode_flat(data, len(rows), 2, dod, dense).tolist() == flat
    assert last_row(data, len(rows), 2, dod, dense) == rows[-1]


def test_an_unchanging_series_is_one_run() -> None:
    """An idle cache: 10 000 equal rows are one chunk holding one row, whatever the length."""
    timeline = Timeline(64)
    series = Series(13, 900, 64)
    row = tuple(range(13))
    for _ in range(10_000):
        tick = timeline.record(float(timeline.ticks))
        series.append(tick, row, timeline.block)
    assert len(series._chunks) == 1 and series._chunks[0].data is row
    assert series.nbytes() < 1200
    _, times, rows, before = series.read(900)
    assert rows == [row] * 900 and before == row
    assert times == [float(t) for t in range(10_000 - 900, 10_000)]
