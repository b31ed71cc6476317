"""The warm-restart snapshot file: one cluster's cache contents, encrypted at rest.

Cache contents are tenants' data, so a snapshot is as private as the rest of the data
directory (mode 0600) and encrypted with a key derived from its key file
(``Secrets.snapshot_key``). It is written and read in chunks of about ``CHUNK`` bytes, so
saving or loading a gigabyte never holds more than one chunk (and one item) beyond the
items themselves.

Layout (integers little-endian)::

    header  MAGIC | version u16 | nonce prefix (8 bytes) | saved_at f64 |
            CAS watermark u64 | cluster name length u16 | cluster name (UTF-8)
    frames  u32 (ciphertext length, top bit set on the last frame) | ciphertext

Each frame is one AES-256-GCM chunk. Chunk ``i`` has the nonce ``prefix ‖ u32 i`` and the
associated data ``header ‖ u32 i ‖ last``, so a changed header, a chunk swapped, dropped
or replayed, a cut-off file (no last frame) or bytes after the last frame all fail
authentication or the framing (the "STREAM" construction of online authenticated
encryption). Nothing is trusted before its chunk authenticates.

The plaintext is a sequence of records, never split across chunks::

    b"C" u16 id length, f64 pending flush, cache id          the items after it are this cache's
    b"I" u16 key length, u32 value length, u32 flags, f64 exptime, u64 CAS,
         f64 atime, f64 mtime, u8 bits (1 fetched, 2 stale), key, value

A snapshot is written to a temporary file, fsynced and renamed into place, so a crash
while saving leaves no snapshot rather than half of one. Opening one removes it from the
directory at once: a crash after loading can never load the same (by then stale) contents
again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backend.datadir import FILE_MODE
from backend.engine import SavedItem

MAGIC = b"CACHIER-WARM"
VERSION = 1
CHUNK = 1024 * 1024  # plaintext per frame; a single larger record gets a frame of its own
# No record is larger than an item (1 MiB key + value) plus its header: a frame longer than
# this is corrupt, and refusing it keeps a bad length from allocating gigabytes.
MAX_FRAME = 2 * CHUNK + 4096
LAST = 1 << 31
SUFFIX = ".snapshot"

_HEAD = struct.Struct("<H8sdQH")  # version, nonce prefix, saved_at, CAS watermark, name length
_FRAME = struct.Struct("<I")
_INDEX = struct.Struct("<IB")  # chunk index, last flag: with the header, the chunk's AAD
_CACHE = struct.Struct("<Hd")
_ITEM = struct.Struct("<HIIdQddB")
_CACHE_TAG, _ITEM_TAG = ord("C"), ord("I")
_ITEM_PACK = struct.Struct("<B" + _ITEM.format[1:]).pack  # the tag and the item's header
_ITEM_RECORD = 1 + _ITEM.size
_FETCHED, _STALE = 1, 2
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")


class SnapshotError(Exception):
    """A snapshot that cannot be loaded: corrupt, truncated, of another key, cluster or
    version. The service starts without it."""


@dataclass(frozen=True, slots=True)
class CacheStart:
    """The items that follow, up to the next ``CacheStart``, are this cache's."""

    cache_id: str
    pending_flush: float


Record = CacheStart | SavedItem


def snapshot_path(data_dir: Path, cluster: str) -> Path:
    """The cluster's snapshot in the data directory: keyed by cluster, so processes that
    share a data directory (each serving some clusters) each find their own."""
    if _SAFE_NAME.fullmatch(cluster):
        return data_dir / f"warm-{cluster}{SUFFIX}"
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:32]
    return data_dir / f"warm-{digest}{SUFFIX}"


def temporary_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + _INDEX.pack(index, last)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack("<I", index)


class SnapshotWriter:
    """Records in, encrypted frames out; ``finish`` writes the last frame."""

    def __init__(self, out: BinaryIO, key: bytes, cluster: str, cas_watermark: int) -> None:
        self._out = out
        self._aead = AESGCM(key)
        self._prefix = secrets.token_bytes(8)
        name = cluster.encode()
        self._header = (
            MAGIC + _HEAD.pack(VERSION, self._prefix, time.time(), cas_watermark, len(name)) + name
        )
        out.write(self._header)
        self._buffer = bytearray()
        self._index = 0
        self.items = 0
        self.bytes = 0  # of keys and values
        self.sync_seconds = 0.0  # of the time to save, waiting for the disk (fsync)

    def cache(self, cache_id: str, pending_flush: float) -> None:
        encoded = cache_id.encode()
        self._record(b"C" + _CACHE.pack(len(encoded), pending_flush) + encoded)

    def item(self, item: SavedItem) -> None:
        key, value, flags, exptime, cas, atime, mtime, fetched, stale = item
        key_length, value_length = len(key), len(value)
        buffer = self._buffer
        if buffer and len(buffer) + _ITEM_RECORD + key_length + value_length > CHUNK:
            self._frame(last=False)
        buffer += _ITEM_PACK(
            _ITEM_TAG,
            key_length,
            value_length,
            flags,
            exptime,
            cas,
            atime,
            mtime,
            (_FETCHED if fetched else 0) | (_STALE if stale else 0),
        )
        buffer += key
        buffer += value
        self.items += 1
        self.bytes += key_length + value_length

    def finish(self) -> None:
        self._frame(last=True)

    def _record(self, record: bytes) -> None:
        if self._buffer and len(self._buffer) + len(record) > CHUNK:
            self._frame(last=False)
        self._buffer += record

    def _frame(self, last: bool) -> None:
        index = self._index
        sealed = self._aead.encrypt(
            _nonce(self._prefix, index), self._buffer, _aad(self._header, index, last)
        )
        self._out.write(_FRAME.pack(len(sealed) | (LAST if last else 0)))
        self._out.write(sealed)
        self._buffer.clear()
        self._index += 1


@contextlib.contextmanager
def write_snapshot(
    data_dir: Path, cluster: str, key: bytes, cas_watermark: int
) -> Iterator[SnapshotWriter]:
    """A writer whose file replaces the cluster's snapshot only once complete and on disk
    (temporary file, fsync, rename, fsync of the directory); on an error it is removed."""
    path = snapshot_path(data_dir, cluster)
    partial = temporary_path(path)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # a leftover temporary file may have had another mode
        with os.fdopen(fd, "wb", buffering=256 * 1024) as out:
            writer = SnapshotWriter(out, key, cluster, cas_watermark)
            yield writer
            writer.finish()
            out.flush()
            synced = time.perf_counter()
            os.fsync(out.fileno())
            writer.sync_seconds = time.perf_counter() - synced
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    _sync_directory(data_dir)


def _sync_directory(directory: Path) -> None:
    """Make a rename or removal in ``directory`` survive a power loss."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SnapshotReader:
    """Decrypts and parses a snapshot one chunk at a time (``next_batch``).

    ``authenticated`` turns true once the first chunk (and with it the header: the CAS
    watermark, the cluster) has been verified; ``complete`` once the last one has.
    """

    def __init__(self, source: BinaryIO, key: bytes, cluster: str) -> None:
        self._in = source
        self._aead = AESGCM(key)
        magic = self._read(len(MAGIC), "header")
        if magic != MAGIC:
            raise SnapshotError("not a cachier snapshot")
        head = self._read(_HEAD.size, "header")
        version, self._prefix, self.saved_at, self.cas_watermark, name_length = _HEAD.unpack(head)
        if version != VERSION:
            raise SnapshotError(f"snapshot format {version} is not supported (this is {VERSION})")
        name = self._read(name_length, "header")
        self._header = magic + head + name
        if name != cluster.encode():
            raise SnapshotError(f"it is cluster {name.decode(errors='replace')!r}'s snapshot")
        self.cluster = cluster
        self._index = 0
        self.authenticated = False
        self.complete = False

    def next_batch(self) -> list[Record] | None:
        """The records of the next chunk; None after the last one."""
        if self.complete:
            return None
        (length,) = _FRAME.unpack(self._read(_FRAME.size, "frame"))
        last = bool(length & LAST)
        length &= ~LAST
        if length > MAX_FRAME:
            raise SnapshotError(f"chunk {self._index} claims {length} bytes: corrupt")
        sealed = self._read(length, f"chunk {self._index}")
        index = self._index
        try:
            plain = self._aead.decrypt(
                _nonce(self._prefix, index), sealed, _aad(self._header, index, last)
            )
        except InvalidTag:
            raise SnapshotError(
                f"chunk {index} does not authenticate (corrupt, or another key file's)"
            ) from None
        self.authenticated = True
        self._index += 1
        if last:
            if self._in.read(1):
                raise SnapshotError("data after the last chunk")
            self.complete = True
        try:
            return _parse(plain)
        except (struct.error, UnicodeDecodeError, IndexError) as exc:
            raise SnapshotError(f"chunk {index} does not parse: {exc}") from None

    def _read(self, size: int, what: str) -> bytes:
        data = self._in.read(size)
        if len(data) != size:
            raise SnapshotError(f"truncated in its {what}")
        return data


def _parse(chunk: bytes) -> list[Record]:
    records: list[Record] = []
    append = records.append
    item_head, cache_head = _ITEM.unpack_from, _CACHE.unpack_from
    item_size, cache_size = _ITEM.size, _CACHE.size
    new_tuple = tuple.__new__
    pos, end = 0, len(chunk)
    while pos < end:
        tag = chunk[pos]
        if tag == _ITEM_TAG:
            key_length, value_length, flags, exptime, cas, atime, mtime, bits = item_head(
                chunk, pos + 1
            )
            start = pos + 1 + item_size
            middle = start + key_length
            pos = middle + value_length
            if pos > end:
                raise struct.error("an item runs past its chunk")
            fields = (
                chunk[start:middle],
                chunk[middle:pos],
                flags,
                exptime,
                cas,
                atime,
                mtime,
                bool(bits & _FETCHED),
                bool(bits & _STALE),
            )
            append(new_tuple(SavedItem, fields))  # SavedItem(*fields) without its overhead
        elif tag == _CACHE_TAG:
            id_length, pending_flush = cache_head(chunk, pos + 1)
            start = pos + 1 + cache_size
            pos = start + id_length
            if pos > end:
                raise struct.error("a cache record runs past its chunk")
            append(CacheStart(chunk[start:pos].decode(), pending_flush))
        else:
            raise struct.error(f"unknown record {tag:#x}")
    return records


@contextlib.contextmanager
def open_snapshot(path: Path, key: bytes, cluster: str) -> Iterator[SnapshotReader]:
    """Open a snapshot and remove it from the directory before reading anything: whatever
    happens next (a refusal, a crash mid-load, a crash after it), it is never loaded twice.
    Raises ``FileNotFoundError`` when there is none, ``SnapshotError`` when it is unusable."""
    source = path.open("rb", buffering=256 * 1024)
    try:
        try:
            path.unlink()
            _sync_directory(path.parent)
        except OSError as exc:
            raise SnapshotError(f"cannot remove it once read: {exc}") from None
        yield SnapshotReader(source, key, cluster)
    finally:
        source.close()
