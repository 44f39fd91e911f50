"""Inference off the executor thread, and latency statistics (plain Python, no rclpy).

``InferenceWorker`` owns one daemon thread. ``submit`` hands it a job only when it is idle (a
control loop never queues stale observations behind a slow inference) and the result comes back
through a callback on the worker thread. ``LatencyWindow`` keeps the last N samples for p50/p99.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

__all__ = ['InferenceWorker', 'LatencyWindow']

logger = logging.getLogger(__name__)

JobT = TypeVar('JobT')
ResultT = TypeVar('ResultT')


class LatencyWindow:
    """Rolling window of durations in seconds; percentiles reported in milliseconds."""

    def __init__(self, size: int = 500) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._samples.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        with self._lock:
            if not self._samples:
                return None
            return float(np.percentile(np.asarray(self._samples), q)) * 1e3

    def __len__(self) -> int:
        with self._lock:
            return len(self._samples)


class InferenceWorker(Generic[JobT, ResultT]):
    """Run ``fn(job)`` on one background thread; ``on_result(job, result)`` or ``on_error``.

    ``nice`` > 0 lowers the thread's scheduling priority (Linux: nice is per thread);
    ``priority`` > 0 runs it ``SCHED_FIFO`` instead (for a thread that waits on a process)."""

    def __init__(
        self,
        fn: Callable[[JobT], ResultT],
        on_result: Callable[[JobT, ResultT], None],
        on_error: Callable[[JobT, BaseException], None],
        *,
        name: str = 'ptr-inference',
        nice: int = 0,
        priority: int = 0,
    ) -> None:
        self._fn = fn
        self._on_result = on_result
        self._on_error = on_error
        self._job: JobT | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._nice, self._priority = nice, priority
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._busy

    def submit(self, job: JobT) -> bool:
        """Start ``job`` if the worker is idle; False (job dropped) when it is busy or closed."""
        with self._cond:
            if self._busy or self._closed:
                return False
            self._job = job
            self._busy = True
            self._cond.notify()
            return True

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        if self._priority > 0:  # a thread that only waits (on a child process): real-time
            with contextlib.suppress(AttributeError, OSError):
                os.sched_setscheduler(threading.get_native_id(), os.SCHED_FIFO,
                                      os.sched_param(self._priority))
        elif self._nice:
            # Linux nice is per thread: the control tick and the executor win the CPU from a
            # long inference; raising one's own nice value needs no privilege.
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._nice)
            except (AttributeError, OSError) as err:
                logger.debug('could not lower the inference thread priority: %s', err)
        while True:
            with self._cond:
                while self._job is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job = self._job
                self._job = None
            assert job is not None
            try:
                result = self._fn(job)
            except Exception as err:  # reported to the node, which holds and logs it
                try:
                    self._on_error(job, err)
                finally:
                    self._finish()
                continue
            try:
                self._on_result(job, result)
            except Exception:
                logger.exception('inference result callback failed')
            finally:
                self._finish()

    def _finish(self) -> None:
        with self._cond:
            self._busy = False
