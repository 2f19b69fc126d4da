"""Standard input and output for the event loop, through threads of their own.

A pipe, a file and a terminal all read the same way with `os.read`; doing it in a
daemon thread means a read that blocks (a terminal nobody types into) never
holds up the loop, nor the exit: the thread dies with the process. Queues are
bounded both ways, so a fast producer waits instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading

CHUNK = 64 * 1024
_QUEUE_CHUNKS = 16


class ThreadedReader:
    """Chunks read from one file descriptor; b"" once at its end (or on an error)."""

    def __init__(self, fd: int, *, name: str = "stdin") -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = fd
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._room = threading.Semaphore(_QUEUE_CHUNKS)
        self._pending = b""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def _run(self) -> None:
        while True:
            self._room.acquire()
            try:
                chunk = os.read(self._fd, CHUNK)
            except OSError:
                chunk = b""
            with contextlib.suppress(RuntimeError):  # the loop is gone: we are exiting
                self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)
            if not chunk:
                return

    async def read(self) -> bytes:
        """The next chunk, or b"" at the end."""
        if self._pending:
            chunk, self._pending = self._pending, b""
            return chunk
        self._start()
        chunk = await self._queue.get()
        self._room.release()
        if not chunk:
            self._queue.put_nowait(b"")  # the end stays the end for every later read
        return chunk

    async def readline(self, limit: int = 64 * 1024) -> bytes:
        """One line with its newline (or what was left at the end); the rest is kept."""
        line = b""
        while b"\n" not in line and len(line) < limit:
            chunk = await self.read()
            if not chunk:
                return line
            line += chunk
        head, newline, rest = line.partition(b"\n")
        self._pending = rest + self._pending
        return head + newline


class ThreadedWriter:
    """Writes to one file descriptor from a thread; `drain` waits while too much is queued."""

    def __init__(self, fd: int, *, name: str = "stdout") -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=_QUEUE_CHUNKS)
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._failure: OSError | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            future = asyncio.run_coroutine_threadsafe(self._queue.get(), self._loop)
            try:
                chunk = future.result()
            except (RuntimeError, asyncio.CancelledError):
                return
            if chunk is None:
                break
            try:
                view = memoryview(chunk)
                while view:
                    written = os.write(self._fd, view)
                    view = view[written:]
            except OSError as error:
                self._failure = error
                break
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def write(self, data: bytes) -> None:
        """Queue `data`; waits while the queue is full. Raises the thread's write error."""
        if self._failure is not None:
            raise self._failure
        if data:
            await self._queue.put(data)

    async def close(self) -> None:
        """Everything queued is written when this returns."""
        if not self._done.done():
            await self._queue.put(None)
        await asyncio.shield(self._done)
        if self._failure is not None:
            raise self._failure
