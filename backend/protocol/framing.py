"""What both codecs share: a per-connection input buffer with bounded, skippable input."""

from __future__ import annotations


class Handoff:
    """A connection the codec gives up at authentication: its cache's cluster runs on
    another process, and ``backend.relay`` carries the connection there.

    ``request`` is the client's authentication request as it sent it (the remote proxy
    authenticates the client itself) followed by every byte the client sent after it, in
    order; ``unavailable`` is what the client gets when no proxy of the cluster can be
    reached: the codec's answer for a cluster that is down.
    """

    __slots__ = ("request", "unavailable")

    def __init__(self, request: bytes, unavailable: bytes) -> None:
        self.request = bytearray(request)
        self.unavailable = unavailable


class StreamCodec:
    """Keeps the bytes of an incomplete request, and skips bytes that must be discarded.

    Subclasses set ``need`` to the size of the request they are waiting for, so a large
    value arriving in many segments is joined once, not re-copied on every segment.
    """

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = 0  # bytes the buffered, incomplete request needs before it can run
        self.swallow = 0  # bytes still to discard (an oversize or refused request body)
        self.closing = False
        self.handoff: Handoff | None = None  # set, with ``closing``, to relay the connection

    def release(self) -> None:
        """The connection is gone: drop buffered input and every reference that ties the
        codec into a cycle (tables of bound methods), so its memory returns now: a cycle
        that was alive at a sweep is frozen and would wait for a thaw
        (``backend.gcpolicy``)."""
        self.buf = bytearray()
        self.closing = True

    def _unbuffer(self, data: bytes) -> bytes | None:
        """The bytes to parse now, or None while the pending request is still incomplete."""
        if self.swallow:
            if len(data) <= self.swallow:
                self.swallow -= len(data)
                return None
            data = data[self.swallow :]
            self.swallow = 0
        if self.buf:
            self.buf += data
            if len(self.buf) < self.need:
                return None
            data = bytes(self.buf)
            self.buf.clear()
        self.need = 0
        return data
