"""One QUIC stream as an asyncio transport, so applications get a plain StreamReader/Writer.

Backpressure both ways goes through asyncio's own machinery: the transport
calls `pause_writing()` on its protocol when more than the high-water mark of
the stream is unacknowledged (so `StreamWriter.drain()` waits) and
`resume_writing()` once acknowledgements bring it under the low mark; the
StreamReader calls `pause_reading()` when the application lets too much pile
up, and the session then stops raising the peer's send window on the stream.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class StreamOwner(Protocol):
    """What a stream transport needs from its session."""

    def stream_write(self, stream_id: int, data: bytes, *, end_stream: bool) -> None: ...

    def stream_reset(self, stream_id: int) -> None: ...

    def stream_unacknowledged(self, stream_id: int) -> int: ...

    def stream_pause_reading(self, stream_id: int, paused: bool) -> None: ...


class QuicStreamTransport(asyncio.Transport):
    """The asyncio face of one bidirectional QUIC stream."""

    def __init__(
        self,
        owner: StreamOwner,
        stream_id: int,
        *,
        high_water: int,
        low_water: int,
        read_limit: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__()
        self.stream_id = stream_id
        self._owner = owner
        self._high = high_water
        self._low = low_water
        self._write_closed = False
        self._eof_received = False
        self._finished = False
        self._write_paused = False
        self.reader = asyncio.StreamReader(limit=read_limit, loop=loop)
        self._protocol = asyncio.StreamReaderProtocol(self.reader, loop=loop)
        self._protocol.connection_made(self)
        self.writer = asyncio.StreamWriter(self, self._protocol, self.reader, loop)

    # -- asyncio.Transport -------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.stream_id if name == "stream_id" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._write_closed:
            raise RuntimeError(f"stream {self.stream_id}: write after write_eof/close")
        if data:
            self._owner.stream_write(self.stream_id, bytes(data), end_stream=False)
            self.check_write_pressure()

    def write_eof(self) -> None:
        if not self._write_closed and not self._finished:
            self._write_closed = True
            self._owner.stream_write(self.stream_id, b"", end_stream=True)
            self._maybe_finish()

    def can_write_eof(self) -> bool:
        return True

    def close(self) -> None:
        self.write_eof()

    def is_closing(self) -> bool:
        return self._write_closed or self._finished

    def abort(self) -> None:
        if not self._finished:
            self._owner.stream_reset(self.stream_id)
            self.fail(ConnectionAbortedError(f"stream {self.stream_id} aborted by us"))

    def get_write_buffer_size(self) -> int:
        return self._owner.stream_unacknowledged(self.stream_id)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def pause_reading(self) -> None:
        self._owner.stream_pause_reading(self.stream_id, True)

    def resume_reading(self) -> None:
        self._owner.stream_pause_reading(self.stream_id, False)

    def is_reading(self) -> bool:
        return not self._finished

    # -- from the session ----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._finished

    def check_write_pressure(self) -> None:
        """Pause or resume the writer by how much of the stream is unacknowledged."""
        if self._finished:
            return
        pending = self._owner.stream_unacknowledged(self.stream_id)
        if not self._write_paused and pending > self._high:
            self._write_paused = True
            self._protocol.pause_writing()
        elif self._write_paused and pending <= self._low:
            self._write_paused = False
            self._protocol.resume_writing()

    def data_received(self, data: bytes, end_stream: bool) -> None:
        if self._finished:
            return
        if data:
            self._protocol.data_received(data)
        if end_stream:
            self._eof_received = True
            self._protocol.eof_received()
            self._maybe_finish()

    def fail(self, error: Exception) -> None:
        """The stream (or the whole session) is gone; data already read stays readable."""
        if self._finished:
            return
        self._finished = True
        self._protocol.connection_lost(None if self._eof_received else error)

    def _maybe_finish(self) -> None:
        if self._write_closed and self._eof_received and not self._finished:
            self._finished = True
            self._protocol.connection_lost(None)
