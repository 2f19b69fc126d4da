"""The one place that picks the event loop: uvloop where it exists, asyncio otherwise."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None (asyncio's default) when uvloop is missing."""
    try:
        import uvloop  # noqa: PLC0415 - optional at run time
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh event loop of the best kind available."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


class DeadlineTimer:
    """One event-loop timer at a sans-IO core's next deadline.

    Adapters call `set(core.get_timer())` after every input; the loop timer is
    re-armed only when the deadline moved (as aioquic's asyncio adapter does), so
    a busy datagram path does not churn timer handles. `fire(now)` gets the time
    to hand the core: never before the deadline it asked for, since an event loop
    may run a timer a fraction of a millisecond early (uvloop does, often).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fire: Callable[[float], None]) -> None:
        self._loop = loop
        self._fire = fire
        self._handle: asyncio.TimerHandle | None = None
        self._deadline: float | None = None

    def set(self, deadline: float | None) -> None:
        """Wake at `deadline` (loop time; a past one means as soon as possible), or never."""
        if deadline == self._deadline:  # a deadline is set exactly while a handle is armed
            return
        self.cancel()
        self._deadline = deadline
        if deadline is not None:
            self._handle = self._loop.call_at(deadline, self._expired)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._deadline = None

    def _expired(self) -> None:
        deadline = self._deadline
        self._handle = None
        self._deadline = None
        now = self._loop.time()
        self._fire(now if deadline is None else max(deadline, now))
