"""The control tick's own thread (plain Python, no rclpy).

``ControlClock`` calls ``tick(planned)`` at ``planned = t0 + k * period`` (monotonic seconds)
on a dedicated thread that sleeps to absolute deadlines, so a slow callback elsewhere in the
process (a camera decode, a service, diagnostics on the executor) never delays it, and a late
tick does not shift the ones after it. When the thread wakes more than a period late, the
missed ticks are skipped, never run in a burst, and reported to ``on_overrun(skipped, now)``.
An exception in ``tick`` goes to ``on_error`` and the clock keeps running (the node turns it
into a safe state). ``priority`` (1-99) runs the thread under ``SCHED_FIFO`` at that priority,
as ros2_control runs its update loop: on a loaded machine a waking tick then preempts every
ordinary process instead of queueing behind them; it needs ``CAP_SYS_NICE`` (or an ``rtprio``
limit), and without it ``warn`` says so and the thread runs at normal priority.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ['ControlClock', 'set_fifo']

logger = logging.getLogger(__name__)


def set_fifo(priority: int) -> str:
    """Run the calling thread ``SCHED_FIFO`` at ``priority`` (0: back to ``SCHED_OTHER``);
    why not, or ``''``."""
    policy = os.SCHED_FIFO if priority > 0 else os.SCHED_OTHER
    try:
        os.sched_setscheduler(threading.get_native_id(), policy, os.sched_param(priority))
    except (AttributeError, OSError) as err:
        return (f'SCHED_FIFO priority {priority} refused ({err}); running at normal priority '
                '(grant CAP_SYS_NICE or an rtprio limit)')
    return ''


class ControlClock:
    """``start()`` / ``stop()`` a thread that ticks every ``period`` seconds."""

    def __init__(
        self,
        period: float,
        tick: Callable[[float], None],
        *,
        on_overrun: Callable[[int, float], None] = lambda skipped, now: None,
        on_error: Callable[[BaseException], None] = lambda err: None,
        name: str = 'ptr-control',
        priority: int = 0,
        warn: Callable[[str], Any] = logger.warning,
    ) -> None:
        if not period > 0:
            msg = f'control period must be > 0 s, got {period!r}'
            raise ValueError(msg)
        self.period = period
        self._tick = tick
        self._on_overrun = on_overrun
        self._on_error = on_error
        self._name = name
        self.priority, self._warn = priority, warn
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.skipped = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        why = set_fifo(self.priority) if self.priority > 0 else ''
        if why:
            self._warn(f'control thread: {why}')
        planned = time.monotonic() + self.period
        while not self._stop.wait(max(0.0, planned - time.monotonic())):
            now = time.monotonic()
            late = int((now - planned) // self.period)
            if late > 0:  # woke after the next deadline: skip what was missed
                planned += late * self.period
                self.skipped += late
                self._call(self._on_overrun, late, now)
            self.ticks += 1
            self._call(self._tick, planned)
            planned += self.period

    def _call(self, fn: Callable[..., None], *args: float) -> None:
        try:
            fn(*args)
        except Exception as err:
            try:
                self._on_error(err)
            except Exception:
                logger.exception('control clock error handler failed')
