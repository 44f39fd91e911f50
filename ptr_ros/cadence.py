"""How well the node keeps time, as plain Python (no rclpy): one jitter statistic, and the
per-minute cadence report the node publishes as diagnostics.

* ``period_jitter``: the one jitter statistic of ptr -- the two-sided p99 of ``|period - T|``
  over one window of stamps, with the longest gap. The node's diagnostics and
  ``bench/bench_latency.py`` (publication and subscriber stamps) all call it, so two columns
  never compare different statistics.
* ``CadenceReport``: per window (a minute by default), the mean and worst of observation age,
  inference time, publish period and how late each tick woke and published after its planned
  time, the publish-period jitter and the overruns (control ticks that ran late by more than a
  period and were skipped). The last complete window is reported
  beside the one in progress.
* ``horizon_warning``: a line when the executed horizon of a trajectory is shorter than the
  measured p99 publication gap (the controller would reach its last point and hold).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ['CADENCE_KEYS', 'CadenceReport', 'Jitter', 'horizon_warning', 'period_jitter']

# tick_late: the control thread's wake after its planned time; publish_late: the command's
# publication after it (wake + sampling + limits + message); the two tell a scheduler delay
# from work done in the tick.
CADENCE_KEYS = ('obs_age_ms', 'inference_ms', 'period_ms', 'tick_late_ms', 'publish_late_ms')


@dataclass(frozen=True)
class Jitter:
    """Of one window of stamps: ``p99_ms`` of ``|period - T|`` (two-sided), the longest gap."""

    p99_ms: float
    max_gap_ms: float
    p99_gap_ms: float
    periods: int


def period_jitter(stamps: Sequence[float] | np.ndarray, period_s: float) -> Jitter:
    """The jitter of ``stamps`` (seconds, ascending) against the nominal ``period_s``; NaN
    when fewer than two stamps."""
    t = np.asarray(stamps, dtype=np.float64)
    if t.size < 2:
        return Jitter(math.nan, math.nan, math.nan, 0)
    gaps = np.diff(t)
    dev = np.abs(gaps - period_s)
    return Jitter(p99_ms=float(np.percentile(dev, 99)) * 1e3,
                  max_gap_ms=float(gaps.max()) * 1e3,
                  p99_gap_ms=float(np.percentile(gaps, 99)) * 1e3, periods=int(gaps.size))


def horizon_warning(horizon_s: float, p99_gap_ms: float) -> str:
    """Why a trajectory of ``horizon_s`` may run out between publications, or ``''``."""
    if not math.isfinite(p99_gap_ms) or p99_gap_ms <= horizon_s * 1e3:
        return ''
    return (f'the executed horizon {horizon_s * 1e3:.1f} ms is shorter than the p99 publication '
            f'gap {p99_gap_ms:.1f} ms: the controller reaches the last point and holds; raise '
            'trajectory_points (or lower the load on this machine)')


class _Window:
    def __init__(self) -> None:
        self.sums = dict.fromkeys(CADENCE_KEYS, 0.0)
        self.counts = dict.fromkeys(CADENCE_KEYS, 0)
        self.worst = dict.fromkeys(CADENCE_KEYS, math.nan)
        self.stamps: list[float] = []
        self.overruns = 0

    def add(self, key: str, ms: float) -> None:
        self.sums[key] += ms
        self.counts[key] += 1
        self.worst[key] = ms if math.isnan(self.worst[key]) else max(self.worst[key], ms)


class CadenceReport:
    """Means and worsts per ``window_s``; ``publish(t)`` also feeds the period statistics."""

    def __init__(self, period_s: float, window_s: float = 60.0) -> None:
        self.period_s = period_s
        self.window_s = window_s
        self._lock = threading.Lock()
        self._current = _Window()
        self._last: _Window | None = None
        self._started: float | None = None

    def _roll(self, now: float) -> _Window:
        if self._started is None:
            self._started = now
        elif now - self._started >= self.window_s:
            self._last, self._current = self._current, _Window()
            self._started = now
        return self._current

    def add(self, key: str, seconds: float, now: float) -> None:
        """One sample of ``key`` (one of ``CADENCE_KEYS``), in seconds, taken at ``now``."""
        with self._lock:
            self._roll(now).add(key, seconds * 1e3)

    def publish(self, now: float) -> None:
        """A command was published at ``now`` (monotonic s)."""
        with self._lock:
            win = self._roll(now)
            if win.stamps:
                win.add('period_ms', (now - win.stamps[-1]) * 1e3)
            win.stamps.append(now)

    def overrun(self, ticks: int, now: float) -> None:
        """``ticks`` control ticks were skipped: the tick thread woke more than a period late."""
        with self._lock:
            self._roll(now).overruns += ticks

    def jitter(self, *, last: bool = False) -> Jitter:
        with self._lock:
            win = self._last if last else self._current
            stamps = list(win.stamps) if win is not None else []
        return period_jitter(stamps, self.period_s)

    def values(self) -> dict[str, str]:
        """The diagnostics key/values: ``cadence.<key>.mean``/``.max`` (ms), the jitter p99,
        the longest gap and the overruns, for the window in progress and the last full one."""
        out: dict[str, str] = {'cadence.window_s': f'{self.window_s:g}'}
        with self._lock:
            windows = [('cadence', self._current), ('cadence_last', self._last)]
        for prefix, win in windows:
            if win is None:
                continue
            for key in CADENCE_KEYS:
                n = win.counts[key]
                out[f'{prefix}.{key}.mean'] = f'{win.sums[key] / n:.3f}' if n else 'n/a'
                out[f'{prefix}.{key}.max'] = f'{win.worst[key]:.3f}' if n else 'n/a'
            jit = period_jitter(win.stamps, self.period_s)
            out[f'{prefix}.period_jitter_p99_ms'] = _ms(jit.p99_ms)
            out[f'{prefix}.max_gap_ms'] = _ms(jit.max_gap_ms)
            out[f'{prefix}.overruns'] = str(win.overruns)
        return out


def _ms(value: float) -> str:
    return 'n/a' if math.isnan(value) else f'{value:.3f}'
