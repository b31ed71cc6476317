"""Compressed in-memory time series, in the spirit of Gorilla and Prometheus' TSDB.

What analytics keeps per cache is a few thousand rows of integers (gauges and cumulative
counters); kept as Python tuples that is ~160-600 bytes a row. Here a row costs ~1 byte per
value for a busy cache and nothing for an idle one:

* **Timestamps are never stored per series.** Rows sit at integer *slots*: a sampling tick
  number (``Timeline``) or a bucket number (a minute, an hour). A ``Timeline`` keeps each
  tick's time once for every series sampled at it, in blocks of ``block`` ticks; a chunk
  holds a reference to its block, so a block lives exactly as long as some chunk still
  needs it (reference counting is the retention policy, nothing to prune). Which slots of
  its block a chunk has is a bit mask: the delta-of-delta of a regular series is zero and
  costs nothing, a gap costs nothing either.
* **Chunks** cover one aligned block of slots. The open chunk is small and cheap to append
  to: while every row equals the first it holds just that row (an idle cache), otherwise
  a flat ``array('q')``. When it closes it becomes immutable: a constant chunk keeps the
  row (the very tuple, shared with its neighbours), any other is encoded to ``bytes``.
* **Encoding**: per column, the first value then deltas; the int64 deltas are laid out
  byte plane by byte plane (all lowest bytes, then all second bytes...: the high planes
  of small deltas are runs of 0x00 or 0xff) and deflated. This is Gorilla's delta/XOR plus
  bit packing with deflate as the packer: bit packing in pure Python costs ~10 µs a row,
  this is all C (``map``, ``array``, slicing, ``zlib``) and reads back with
  ``itertools.accumulate``. Each chunk decodes on its own. A ``dense`` series (appended
  to rarely: rollups) packs its closed chunks with LZMA instead (~10 % smaller, ~7x the
  time, paid once per chunk) and parks its open rows 4 at a time, as one part.
* **Runs**: consecutive full constant chunks with the same row merge into one run, so an
  idle series is one small object whatever its length.

A ``Series`` keeps at least its ``capacity`` most recent rows (whole chunks are dropped,
so up to two chunks more are held); ``read(n)`` answers the last ``n`` rows, their slots
and times, and the row just before them (what a rate over the first one needs), which
survives the chunk that held it.

Single-threaded: the caller owns the series (analytics: the control thread).
"""

from __future__ import annotations

import lzma
import operator
import sys
import weakref
import zlib
from array import array
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain, repeat

Row = tuple[int, ...]
Block = array  # a Timeline block: the times of consecutive ticks (``array('d')``)
# What a chunk knows of its times: None (slot x resolution), its block, or a run's blocks.
Times = Block | tuple[Block, ...] | None

_LEVEL = 6  # deflate level: 1 is ~8 % bigger for ~30 % less time, both negligible per row
_RAW = -15  # raw deflate: no zlib header or checksum (6 bytes a chunk)
# ``dense``: raw LZMA2 (no container), 4 KiB dictionary (a chunk is smaller), no literal
# context (bytes of one plane do not predict each other): ~10 % smaller than deflate on
# rollup chunks, for ~1.2 ms instead of ~0.16 ms per 120-row chunk to encode, ~0.15 ms
# instead of ~0.04 ms to decode. Only for closed chunks of series appended to rarely.
_LZMA = [{"id": lzma.FILTER_LZMA2, "dict_size": 4096, "lc": 0, "lp": 0, "pb": 0}]


def _delta(values: Sequence[int]) -> list[int]:
    return [*values[:1], *map(operator.sub, values[1:], values[:-1])]


def encode(flat: Sequence[int], width: int, dod: bool = False, dense: bool = False) -> bytes:
    """Rows of ``width`` integers, row-major in ``flat``, as one compressed chunk.

    Per column, the first value then the deltas (``dod``: the first delta then deltas of
    deltas, zigzag-mapped so that small negatives become small positives: a steady rate
    gives zeros), as 64-bit integers laid out byte plane by byte plane, deflated. Deltas
    cost 2 passes over the values, ``dod`` 6: it is for series appended to rarely (~4 %
    smaller). Values and their deltas (of deltas) must fit in 62 bits. ``dense``: LZMA
    rather than deflate (see ``_LZMA``).
    """
    if dod:
        columns: list[Iterable[int]] = []
        for c in range(width):
            deltas = _delta(flat[c::width])
            dods = [*deltas[:2], *_delta(deltas[1:])[1:]]
            zigzag = map(
                operator.xor, map(operator.lshift, dods, _ONES), map(operator.rshift, dods, _SIGNS)
            )
            columns.append(zigzag)
        plain = array("Q", chain.from_iterable(columns)).tobytes()
    else:  # row-major deltas in one pass, then column by column (C slicing)
        changes = array("q", flat[:width])
        changes.extend(map(operator.sub, flat[width:], flat[:-width]))
        plain = b"".join(changes[c::width].tobytes() for c in range(width))
    planes = b"".join(plain[i::8] for i in range(8))
    if dense:
        return lzma.compress(planes, lzma.FORMAT_RAW, filters=_LZMA)
    return zlib.compress(planes, _LEVEL, _RAW)


def _values(data: bytes, rows: int, width: int, dod: bool, dense: bool) -> array[int]:
    """The encoded values, column by column (deltas, or zigzag deltas of deltas)."""
    if dense:
        planes = lzma.decompress(data, lzma.FORMAT_RAW, filters=_LZMA)
    else:
        planes = zlib.decompress(data, _RAW)
    size = rows * width
    plain = bytearray(size * 8)
    for i in range(8):
        plain[i::8] = planes[i * size : (i + 1) * size]
    values = array("Q" if dod else "q")
    values.frombytes(plain)
    return values


def _columns(data: bytes, rows: int, width: int, dod: bool, dense: bool) -> list[Iterable[int]]:
    values = _values(data, rows, width, dod, dense)
    columns: list[Iterable[int]] = []
    for c in range(width):
        column = values[c * rows : (c + 1) * rows]
        if not dod:
            columns.append(accumulate(column))
            continue
        dods = map(
            operator.xor,
            map(operator.rshift, column, _ONES),
            map(operator.neg, map(operator.and_, column, _ONES)),
        )
        first = next(dods)
        columns.append(accumulate(accumulate(dods), initial=first))
    return columns


def decode(data: bytes, rows: int, width: int, dod: bool = False, dense: bool = False) -> list[Row]:
    """The rows ``encode`` was given (``rows`` of them, the same ``dod`` and ``dense``)."""
    return list(zip(*_columns(data, rows, width, dod, dense), strict=True))


def last_row(data: bytes, rows: int, width: int, dod: bool = False, dense: bool = False) -> Row:
    """The last row ``encode`` was given: with plain deltas a sum per column (no row built)."""
    if dod:
        return tuple(decode_flat(data, rows, width, dod, dense)[-width:])
    values = _values(data, rows, width, dod, dense)
    return tuple(sum(values[c * rows : (c + 1) * rows]) for c in range(width))


def decode_flat(
    data: bytes, rows: int, width: int, dod: bool = False, dense: bool = False
) -> array[int]:
    """What ``encode`` was given, row-major in an ``array('q')`` (no tuple built)."""
    flat = array("q", bytes(rows * width * 8))
    for c, column in enumerate(_columns(data, rows, width, dod, dense)):
        flat[c::width] = array("q", column)
    return flat


_ONES = repeat(1)
_SIGNS = repeat(63)


class Timeline:
    """The times of sampling ticks 0, 1, 2..., stored once for every series sampled at them.

    ``record`` numbers a tick; ``block`` is the array holding the current block's times
    (tick ``n`` is at index ``n % size`` of its block), which a series passes to
    ``Series.append`` with the tick. The last ``keep`` blocks stay reachable by tick
    (``block_of``), for a series that records an idle cache's ticks after the fact
    (``Analytics``).
    """

    __slots__ = ("size", "ticks", "block", "_recent", "_keep")

    def __init__(self, size: int = 64, keep: int = 1) -> None:
        self.size = size
        self.ticks = 0
        self.block = array("d")
        self._recent: list[array[float]] = []  # a list: a few entries, smaller than a deque
        self._keep = max(1, keep)

    def record(self, t: float) -> int:
        """A new tick at time ``t``; returns its number."""
        n = self.ticks
        if n % self.size == 0:
            self.block = array("d")  # the old block lives on in the chunks that use it
            self._recent.append(self.block)
            if len(self._recent) > self._keep:
                del self._recent[0]
        self.block.append(t)
        self.ticks = n + 1
        return n

    def block_of(self, tick: int) -> Block | None:
        """The block holding ``tick``'s time (a recorded tick), None if no longer kept."""
        back = (self.ticks - 1) // self.size - tick // self.size
        recent = self._recent
        return recent[-1 - back] if 0 <= back < len(recent) else None


class _Chunk:
    """A closed chunk (or a run of ``blocks`` full constant chunks): immutable but for
    ``Series`` merging a run or trimming one from its start."""

    __slots__ = ("block", "blocks", "mask", "rows", "times", "data", "__weakref__")

    def __init__(self, block: int, mask: int, rows: int, times: Times, data: bytes | Row) -> None:
        self.block = block  # first block (slot // size)
        self.blocks = 1
        self.mask = mask  # which slots of the block have a row (bit i: slot block*size+i)
        self.rows = rows
        self.times = times  # None, a block's times, or (run) a tuple of them
        self.data = data  # encoded rows, or the one row of a constant chunk

    def nbytes(self) -> int:
        size = sys.getsizeof(self) + sys.getsizeof(self.block)
        if all(self.mask is not full for full in _FULL.values()):  # a full one is shared
            size += sys.getsizeof(self.mask)
        if isinstance(self.data, bytes):
            size += sys.getsizeof(self.data)
        if isinstance(self.times, tuple):
            size += sys.getsizeof(self.times)
        return size


# The rows of the chunks decoded last, by chunk: a dashboard polls the same cache's series
# every second, and closed chunks never change. Weak: a dropped chunk (trimmed, forgotten
# cache) is not kept alive by it. A few caches' worth of fine, minute and hour chunks;
# readers are on one thread (analytics').
_DECODED: dict[int, tuple[weakref.ref[_Chunk], list[Row]]] = {}
DECODED_CHUNKS = 32


def _decoded(chunk: _Chunk, width: int, dod: bool, dense: bool) -> list[Row]:
    hit = _DECODED.get(id(chunk))
    if hit is not None and hit[0]() is chunk:
        return hit[1]
    assert isinstance(chunk.data, bytes)
    rows = decode(chunk.data, chunk.rows, width, dod, dense)
    _DECODED[id(chunk)] = (weakref.ref(chunk), rows)
    if len(_DECODED) > DECODED_CHUNKS:
        del _DECODED[next(iter(_DECODED))]
    return rows


_FULL: dict[int, int] = {}
# Rows an open chunk keeps raw (8 bytes a value) before encoding them as a part; parts are
# re-encoded as one when the chunk closes (~10 % smaller than the parts).
PART = 16
# A dense series (appended to rarely: a minute, an hour) keeps fewer rows raw and its
# parts as one: each part re-encodes the rows parked before it with its own (~0.2 ms).
DENSE_PART = 4


class Series:
    """Rows of ``width`` integers at strictly increasing integer slots; keeps the last
    ``capacity`` rows at least.

    Times: with ``resolution``, slot ``s`` is at ``s * resolution``; without, each
    ``append`` passes the ``Timeline`` block of its slot (a tick number).
    """

    __slots__ = (
        "width",
        "capacity",
        "size",
        "resolution",
        "_full",
        "_part",
        "dod",
        "dense",
        "_chunks",
        "_held",
        "_dropped",
        "_block",
        "_times",
        "_end",
        "_next",
        "_start",
        "_mask",
        "_const",
        "_flat",
        "_parts",
        "_n",
    )

    def __init__(
        self,
        width: int,
        capacity: int,
        size: int = 64,
        resolution: float | None = None,
        dod: bool = False,
        dense: bool = False,
    ) -> None:
        self.width = width
        self.dod = dod  # encode deltas of deltas (see ``encode``)
        self.dense = dense  # closed chunks in LZMA (see ``encode``); open parts in deflate
        self.capacity = capacity
        self.size = size
        self.resolution = resolution
        self._full = _FULL.setdefault(size, (1 << size) - 1)
        self._part = (DENSE_PART if dense else PART) * width  # raw values held at most
        self._chunks: list[_Chunk] = []  # a list: fewer bytes than a deque, and short
        self._held = 0  # rows in closed chunks
        # The last row dropped: decoded when its chunk is dropped (once per chunk, ~0.1 ms
        # for 128 rows), rather than the whole encoded chunk kept for one row.
        self._dropped: Row | None = None
        # The open chunk: block, its times, slots [_start, _next) plus _mask, _n rows.
        self._block = 0
        self._times: Block | None = None
        self._end = -sys.maxsize  # first slot past the open block: any slot opens one
        self._next = self._start = self._mask = self._n = 0
        self._const: Row | None = None  # the row, while every row of the chunk is it
        self._flat: array[int] | None = None  # the latest rows, once they differ
        # Earlier rows of the open chunk, encoded PART rows at a time: (rows, data).
        self._parts: list[tuple[int, bytes]] = []

    def __len__(self) -> int:
        return min(self._held + self._n, self.capacity)

    def append(self, slot: int, row: Row, times: Block | None = None) -> None:
        """Add ``row`` at ``slot`` (greater than any before; ``times``: its Timeline block)."""
        if slot >= self._end:
            self._open(slot, row, times)
            return
        if slot != self._next:
            if slot < self._next:
                raise ValueError(f"slot {slot} is not after {self._next - 1}")
            self._mask |= self._stretch()
            self._start = slot
        self._next = slot + 1
        self._n += 1
        const = self._const
        if const is not None:
            if row == const:
                return
            self._flat = array("q", const * (self._n - 1))
            self._const = None
        flat = self._flat
        assert flat is not None
        flat.extend(row)
        if len(flat) >= self._part:
            if self.dense and self._parts:
                rows, data = self._parts.pop()
                flat = decode_flat(data, rows, self.width, self.dod) + flat
            self._parts.append((len(flat) // self.width, encode(flat, self.width, self.dod)))
            self._flat = array("q")

    def append_run(self, start: int, stop: int, row: Row, times: Block | None = None) -> None:
        """``append(slot, row, times)`` for each slot in ``[start, stop)``, all in one block
        (``times``: its Timeline block): what an idle cache's missed ticks add, in O(1)
        when the open chunk holds that row alone, as an idle cache's does."""
        if start >= stop:
            return
        if stop > (start // self.size + 1) * self.size:
            raise ValueError(f"slots {start}..{stop - 1} span more than one block")
        self.append(start, row, times)
        if self._const is not None and self._const == row:
            self._n += stop - self._next  # a run of the one row: just longer
            self._next = stop
            return
        for slot in range(start + 1, stop):
            self.append(slot, row, times)

    def _stretch(self) -> int:
        """The mask bits of the open chunk's current run of consecutive slots."""
        return ((1 << (self._next - self._start)) - 1) << (self._start - self._block * self.size)

    def _open(self, slot: int, row: Row, times: Block | None) -> None:
        if self._n:
            self._close()
        block = slot // self.size
        self._block, self._times, self._end = block, times, (block + 1) * self.size
        self._start, self._next, self._mask, self._n = slot, slot + 1, 0, 1
        last = self._chunks[-1].data if self._chunks else None
        self._const = last if isinstance(last, tuple) and last == row else row
        self._flat = None
        self._trim()

    def _close(self) -> None:
        mask = self._mask | self._stretch()
        if mask == self._full:
            mask = self._full  # the one shared int, not ~40 bytes per chunk
        n, times, block = self._n, self._times, self._block
        self._n = 0
        self._held += n
        const = self._const
        if const is None:
            latest = self._flat
            assert latest is not None
            flat = latest
            if self._parts:  # one chunk encodes better than its parts
                flat = array("q")
                for rows, data in self._parts:
                    flat.extend(decode_flat(data, rows, self.width, self.dod))
                flat.extend(latest)
                self._parts = []
            data = encode(flat, self.width, self.dod, self.dense)
            self._chunks.append(_Chunk(block, mask, n, times, data))
            self._flat = None
            return
        chunks = self._chunks
        last = chunks[-1] if chunks else None
        if (
            mask == self._full
            and last is not None
            and last.data is const
            and last.mask == mask
            and last.block + last.blocks == block
        ):
            if times is not None:  # the last chunk has times too: the same series
                if isinstance(last.times, tuple):
                    last.times = (*last.times, times)
                elif isinstance(last.times, array):
                    last.times = (last.times, times)
            last.blocks += 1
            last.rows += n
            return
        chunks.append(_Chunk(block, mask, n, times, const))

    def _trim(self) -> None:
        """Drop what is no longer needed for ``capacity`` rows: whole chunks, run blocks."""
        chunks, size = self._chunks, self.size
        while chunks:
            first = chunks[0]
            spare = self._held + self._n - self.capacity
            if first.blocks > 1:
                drop = min(spare // size, first.blocks - 1)
                if drop <= 0:
                    return
                assert isinstance(first.data, tuple)
                self._dropped = first.data
                first.block += drop
                first.blocks -= drop
                first.rows -= drop * size
                self._held -= drop * size
                if isinstance(first.times, tuple):
                    times = first.times[drop:]
                    first.times = times if first.blocks > 1 else times[0]
                continue
            if first.rows > spare:
                return
            del chunks[0]
            data = first.data
            if isinstance(data, bytes):
                data = last_row(data, first.rows, self.width, self.dod, self.dense)
            self._dropped = data
            self._held -= first.rows

    # -- reading ----------------------------------------------------------------------
    def read(self, n: int) -> tuple[list[int], list[float], list[Row], Row | None]:
        """The last ``n`` rows (fewer if fewer are kept) as ``(slots, times, rows, before)``,
        oldest first; ``before`` is the row just before them, None if they start the series.
        """
        n = min(n, len(self))
        parts: list[tuple[list[int], list[float], list[Row]]] = []
        got = 0
        if self._n:
            slots = self._slots(self._block, self._mask | self._stretch())
            parts.append((slots, self._times_of(slots, self._block, self._times), self._rows()))
            got = self._n
        chunks = iter(reversed(self._chunks))
        while got <= n:
            chunk = next(chunks, None)
            if chunk is None:
                break
            parts.append(self._unpack(chunk))
            got += chunk.rows
        parts.reverse()
        slots = [s for part in parts for s in part[0]]
        times = [t for part in parts for t in part[1]]
        rows = [r for part in parts for r in part[2]]
        start = len(rows) - n
        before = rows[start - 1] if start > 0 else self._dropped
        return slots[start:], times[start:], rows[start:], before

    def _rows(self) -> list[Row]:
        """The open chunk's rows."""
        if self._const is not None:
            return [self._const] * self._n
        flat, width = self._flat, self.width
        assert flat is not None
        latest = zip(*(flat[c::width] for c in range(width)), strict=True)
        return [*chain.from_iterable(self._parked()), *latest]

    def _parked(self) -> list[list[Row]]:
        return [decode(data, rows, self.width, self.dod) for rows, data in self._parts]

    def _unpack(self, chunk: _Chunk) -> tuple[list[int], list[float], list[Row]]:
        size = self.size
        if chunk.blocks > 1:
            slots = list(range(chunk.block * size, (chunk.block + chunk.blocks) * size))
            if chunk.times is None:
                times = self._times_of(slots, chunk.block, None)
            else:
                assert isinstance(chunk.times, tuple)
                times = list(chain.from_iterable(chunk.times))
        else:
            slots = self._slots(chunk.block, chunk.mask)
            times = self._times_of(slots, chunk.block, chunk.times)
        data = chunk.data
        if isinstance(data, bytes):
            rows = _decoded(chunk, self.width, self.dod, self.dense)
        else:
            rows = [data] * chunk.rows
        return slots, times, rows

    def _slots(self, block: int, mask: int) -> list[int]:
        base = block * self.size
        if mask == self._full:
            return list(range(base, base + self.size))
        return [base + i for i in range(mask.bit_length()) if mask >> i & 1]

    def _times_of(self, slots: list[int], block: int, times: Times) -> list[float]:
        if times is None:
            resolution = self.resolution
            if resolution is None:
                raise ValueError("a series without resolution needs Timeline blocks")
            return list(map(operator.mul, slots, repeat(resolution)))
        assert isinstance(times, array)
        base = block * self.size
        return [times[s - base] for s in slots]

    def nbytes(self) -> int:
        """Bytes this series holds on its own (not the Timeline blocks it shares, nor the
        int objects of a constant row, which the caller shares too): for measurements."""
        size = sys.getsizeof(self) + sys.getsizeof(self._chunks)
        size += sum(chunk.nbytes() for chunk in self._chunks)
        if self._flat is not None:
            size += sys.getsizeof(self._flat)
        size += sys.getsizeof(self._parts) + sum(sys.getsizeof(p[1]) + 56 for p in self._parts)
        if self._dropped is not None:
            size += sys.getsizeof(self._dropped)
        return size
