"""Stopping a run: Ctrl-C, SIGTERM, `--max-cost`, and the grace period.

In: signals, and stop requests from the stages (the cost budget). Out: `stopping()`,
which the producer and workers check before they take a new session, `halted()`, which
the asker checks before every request and retry, and the cancellation of what still
runs when the grace period ends or a second signal comes. At `--max-cost` the run takes
no new session, and requests already within the budget (reserved) still go; at a
signal nothing new goes at all.

From the first signal no new request is sent, not even a retry; requests already on
the wire get the grace period; every answer that arrives is made durable (the writer
is never cancelled by a stop). The terminal says what the run waits for, and that a
second Ctrl-C stops at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

import anyio
import anyio.abc


class RunControl:
    """Whether the run still takes work, and how it stops."""

    def __init__(
        self,
        grace_s: float,
        *,
        in_flight: Callable[[], int] = lambda: 0,
        say: Callable[[str], None] = lambda text: None,
        on_stop: Callable[[], None] = lambda: None,
    ) -> None:
        self._grace_s = grace_s
        self._in_flight = in_flight
        self._say = say
        self._on_stop = on_stop
        #: Why the run stopped taking work: "signal" or "max_cost"; None while it runs.
        self.reason: str | None = None
        self._work: anyio.CancelScope | None = None
        self._tasks: anyio.abc.TaskGroup | None = None

    def attach(self, work: anyio.CancelScope, tasks: anyio.abc.TaskGroup) -> None:
        """The scope of the work to cancel, and where the grace timer runs."""
        self._work = work
        self._tasks = tasks

    def stopping(self) -> bool:
        """Whether the run takes no new session (a method: other tasks change it)."""
        return self.reason is not None

    def halted(self) -> bool:
        """Whether no request may be sent, not even a retry (a signal)."""
        return self.reason == "signal"

    def stop(self, reason: str) -> None:
        """Take no new session (`reason` "max_cost"), or send nothing more ("signal",
        which overrides a stop at the cost limit)."""
        if self.reason == reason or self.reason == "signal":
            return
        self.reason = reason
        if reason == "signal":
            self._on_stop()  # from this moment, nothing new goes on the wire
            waiting = self._in_flight()
            self._say(
                f"stopping: no new request is sent; waiting up to {self._grace_s:g} s for "
                f"{waiting} request{'s' if waiting != 1 else ''} already sent, whose answers "
                "are kept (Ctrl-C again stops at once)"
            )
            if self._tasks is not None:
                self._tasks.start_soon(self._grace)

    def cancel(self) -> None:
        """Stop at once: what is in flight is dropped (it is asked again on resume)."""
        if self._work is not None:
            self._work.cancel()

    async def _grace(self) -> None:
        await anyio.sleep(self._grace_s)
        self.cancel()

    async def watch_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread: its owner handles them
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                if self.halted():
                    self._say("stopping at once")
                    self.cancel()  # a second signal
                else:
                    self.stop("signal")
