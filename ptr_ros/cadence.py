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
  beside the one in progress. A hold (stop, fault, stale observation) ends a run of
  publications: the pause is not a period.
* ``horizon_warning``: a line when the executed horizon of a trajectory is shorter than the
  measured p99 publication gap (the controller would reach its last point and hold).
* ``CadenceLog``: each finished window as one JSON line (``CADENCE_SCHEMA``) appended to a file
  by a thread of its own (one ``write`` per line, so a killed node leaves whole lines);
  ``read_cadence_log`` reads the windows back (``ptr report --cadence``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np

from bag_tools.fileio import read_head
from ptr_core.errors import PtrError

__all__ = [
    'CADENCE_KEYS',
    'CADENCE_SCHEMA',
    'CadenceLog',
    'CadenceLogError',
    'CadenceReport',
    'CadenceWindow',
    'Jitter',
    'KeyStats',
    'horizon_warning',
    'period_jitter',
    'read_cadence_log',
]

log = logging.getLogger(__name__)

# tick_late: the control thread's wake after its planned time; publish_late: the command's
# publication after it (wake + sampling + limits + message); the two tell a scheduler delay
# from work done in the tick.
CADENCE_KEYS = ('obs_age_ms', 'inference_ms', 'period_ms', 'tick_late_ms', 'publish_late_ms')
CADENCE_SCHEMA = 'ptr.cadence/1'


class CadenceLogError(PtrError):
    """A cadence log cannot be opened, written or read; the message names the file."""


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
    return gap_jitter(np.diff(t) if t.size > 1 else t[:0], period_s)


def gap_jitter(gaps: Sequence[float] | np.ndarray, period_s: float) -> Jitter:
    """``period_jitter`` of the periods themselves (s): runs of stamps with holds between."""
    g = np.asarray(gaps, dtype=np.float64)
    if g.size < 1:
        return Jitter(math.nan, math.nan, math.nan, 0)
    dev = np.abs(g - period_s)
    return Jitter(p99_ms=float(np.percentile(dev, 99)) * 1e3,
                  max_gap_ms=float(g.max()) * 1e3,
                  p99_gap_ms=float(np.percentile(g, 99)) * 1e3, periods=int(g.size))


def horizon_warning(horizon_s: float, p99_gap_ms: float) -> str:
    """Why a trajectory of ``horizon_s`` may run out between publications, or ``''``."""
    if not math.isfinite(p99_gap_ms) or p99_gap_ms <= horizon_s * 1e3:
        return ''
    return (f'the executed horizon {horizon_s * 1e3:.1f} ms is shorter than the p99 publication '
            f'gap {p99_gap_ms:.1f} ms: the controller reaches the last point and holds; raise '
            'trajectory_points (or lower the load on this machine)')


class _Window:
    def __init__(self, last: float | None = None) -> None:
        self.sums = dict.fromkeys(CADENCE_KEYS, 0.0)
        self.counts = dict.fromkeys(CADENCE_KEYS, 0)
        self.worst = dict.fromkeys(CADENCE_KEYS, math.nan)
        self.gaps: list[float] = []  # s between publications of one run (no hold between)
        self.last = last  # the previous publication (monotonic s); None after a hold
        self.published = 0
        self.overruns = 0
        self.end = -math.inf  # the newest sample's time (monotonic s)

    def add(self, key: str, ms: float) -> None:
        self.sums[key] += ms
        self.counts[key] += 1
        self.worst[key] = ms if math.isnan(self.worst[key]) else max(self.worst[key], ms)


class CadenceReport:
    """Means and worsts per ``window_s``; ``publish(t)`` also feeds the period statistics.
    With a ``log``, each finished window is handed to it (``CadenceLog.put``: a queue, no I/O)."""

    def __init__(self, period_s: float, window_s: float = 60.0, *,
                 log: CadenceLog | None = None) -> None:
        self.period_s = period_s
        self.window_s = window_s
        self.log = log
        self._lock = threading.Lock()
        self._current = _Window()
        self._last: _Window | None = None
        self._started: float | None = None

    def _roll(self, now: float) -> _Window:
        if self._started is None:
            self._started = now
        elif now - self._started >= self.window_s:
            if self.log is not None:
                self.log.put(self._current, self._started, now, complete=True)
            # a gap across the boundary counts in the new window
            self._last, self._current = self._current, _Window(self._current.last)
            self._started = now
        self._current.end = max(self._current.end, now)
        return self._current

    def add(self, key: str, seconds: float, now: float) -> None:
        """One sample of ``key`` (one of ``CADENCE_KEYS``), in seconds, taken at ``now``."""
        with self._lock:
            self._roll(now).add(key, seconds * 1e3)

    def publish(self, now: float) -> None:
        """A command was published at ``now`` (monotonic s)."""
        with self._lock:
            win = self._roll(now)
            if win.last is not None:
                win.gaps.append(now - win.last)
                win.add('period_ms', (now - win.last) * 1e3)
            win.last = now
            win.published += 1

    def hold(self) -> None:
        """Publication stopped on purpose (a stop, a fault, a stale observation): the next
        command starts a new run, and the pause is no period."""
        with self._lock:
            self._current.last = None

    def overrun(self, ticks: int, now: float) -> None:
        """``ticks`` control ticks were skipped: the tick thread woke more than a period late."""
        with self._lock:
            self._roll(now).overruns += ticks

    def end_window(self) -> None:
        """End the window in progress at its newest sample (the node deactivates or stops): the
        log gets it, marked incomplete, and the next sample starts a new window."""
        with self._lock:
            if self._started is not None and self.log is not None:
                self.log.put(self._current, self._started, self._current.end, complete=False)
            self._current, self._started = _Window(), None

    def close(self) -> None:
        """End the window in progress and close the log (its last lines written)."""
        self.end_window()
        if self.log is not None:
            self.log.close()

    def jitter(self, *, last: bool = False) -> Jitter:
        with self._lock:
            win = self._last if last else self._current
            gaps = list(win.gaps) if win is not None else []
        return gap_jitter(gaps, self.period_s)

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
            jit = gap_jitter(win.gaps, self.period_s)
            out[f'{prefix}.period_jitter_p99_ms'] = _ms(jit.p99_ms)
            out[f'{prefix}.max_gap_ms'] = _ms(jit.max_gap_ms)
            out[f'{prefix}.overruns'] = str(win.overruns)
        return out


def _ms(value: float) -> str:
    return 'n/a' if math.isnan(value) else f'{value:.3f}'


# -- the cadence log ---------------------------------------------------------------------------

class KeyStats(TypedDict):
    """One ``CADENCE_KEYS`` entry of a window (ms); ``None`` when it had no sample."""

    mean: float | None
    max: float | None
    count: int


class CadenceWindow(TypedDict):
    """One line of a cadence log (``CADENCE_SCHEMA``): one window of one node run."""

    schema: str
    run: str  # which node run: UTC start and pid; one log holds several runs
    run_started: str  # ISO 8601 UTC
    node: str
    checkpoint: str
    start: str  # the window's start, ISO 8601 UTC
    start_unix: float
    duration_s: float
    window_s: float  # the configured length; a window the node ended early is shorter
    complete: bool  # False: the window in progress when the node deactivated or stopped
    rate_hz: float
    horizon_ms: float | None  # executed trajectory horizon; None: a forward controller
    ticks: int
    commands: int
    obs_age_ms: KeyStats
    inference_ms: KeyStats
    period_ms: KeyStats
    tick_late_ms: KeyStats
    publish_late_ms: KeyStats
    period_jitter_p99_ms: float | None
    max_gap_ms: float | None
    p99_gap_ms: float | None
    overruns: int


def _num(value: float, digits: int = 4) -> float | None:
    return None if not math.isfinite(value) else round(float(value), digits)


def window_record(win: _Window, *, start: float, end: float, period_s: float) -> dict[str, Any]:
    """The statistics of one window (``start``/``end`` monotonic s), as a log line's fields."""
    jit = gap_jitter(win.gaps, period_s)
    rec: dict[str, Any] = {'duration_s': round(end - start, 3),
                           'ticks': win.counts['tick_late_ms'], 'commands': win.published}
    for key in CADENCE_KEYS:
        n = win.counts[key]
        rec[key] = {'mean': _num(win.sums[key] / n) if n else None,
                    'max': _num(win.worst[key]) if n else None, 'count': n}
    rec.update(period_jitter_p99_ms=_num(jit.p99_ms), max_gap_ms=_num(jit.max_gap_ms),
               p99_gap_ms=_num(jit.p99_gap_ms), overruns=win.overruns)
    return rec


class CadenceLog:
    """Appends finished windows to ``path``, one ``CADENCE_SCHEMA`` JSON line each.

    The file is created with its parent folders and only ever appended to: one log holds
    several runs of the node, each line naming its ``run``. ``put`` (called on the control
    thread) only queues; a thread of the log computes the statistics and writes each line with
    one ``write`` to an ``O_APPEND`` descriptor, so a killed node leaves whole lines (at worst
    a torn last one, which ``read_cadence_log`` skips). An existing file that is not a cadence
    log is refused.
    """

    def __init__(self, path: str | Path, *, period_s: float, window_s: float,
                 horizon_s: float | None = None, checkpoint: str = '', node: str = '',
                 warn: Callable[[str], Any] = log.warning) -> None:
        self.path = Path(path)
        self.period_s, self._warn = period_s, warn
        started = datetime.now(timezone.utc)
        self.meta = {
            'run': f'{started:%Y%m%dT%H%M%S.%f}Z-{os.getpid()}',
            'run_started': started.isoformat(timespec='milliseconds'),
            'node': node, 'checkpoint': checkpoint,
        }
        self.settings = {'window_s': float(window_s), 'rate_hz': round(1.0 / period_s, 6),
                         'horizon_ms': None if horizon_s is None else _num(horizon_s * 1e3, 3)}
        self._fd = _open_log(self.path)
        self._queue: queue.SimpleQueue[tuple[_Window, float, float, bool] | None] = \
            queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name='ptr-cadence-log', daemon=True)
        self._thread.start()

    def put(self, win: _Window, start: float, end: float, *, complete: bool) -> None:
        """Queue a finished window (``start``/``end`` monotonic s) for the log's thread."""
        self._queue.put((win, start, end, complete))

    def line(self, win: _Window, start: float, end: float, *, complete: bool) -> str:
        """The window's JSON line (with its newline); its wall-clock start from ``start``."""
        start_unix = time.time() - (time.monotonic() - start)
        stamp = datetime.fromtimestamp(start_unix, timezone.utc)
        rec = {'schema': CADENCE_SCHEMA, **self.meta,
               'start': stamp.isoformat(timespec='milliseconds'),
               'start_unix': round(start_unix, 3), **self.settings, 'complete': complete,
               **window_record(win, start=start, end=end, period_s=self.period_s)}
        return json.dumps(rec, allow_nan=False) + '\n'

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            win, start, end, complete = item
            self._write(self.line(win, start, end, complete=complete))

    def _write(self, text: str) -> None:
        data = text.encode('utf-8')
        try:
            done = os.write(self._fd, data)
            while done < len(data):  # a short write (disk nearly full): the rest, once
                done += os.write(self._fd, data[done:])
        except OSError as err:
            self._warn(f'{self.path}: cadence window not written: {err.strerror or err}')

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and close the file (idempotent)."""
        if self._fd < 0:
            return
        self._queue.put(None)
        self._thread.join(timeout)
        os.close(self._fd)
        self._fd = -1


def _open_log(path: Path) -> int:
    head = read_head(path, 64)
    if head and not head.startswith(b'{"schema": "ptr.cadence/'):
        msg = f'{path}: exists and is not a cadence log; choose another cadence_log file'
        raise CadenceLogError(msg)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)
    except OSError as err:
        msg = f'{path}: cannot open the cadence log: {err.strerror or err}'
        raise CadenceLogError(msg) from err


_FIELDS = tuple(CadenceWindow.__annotations__)


def read_cadence_log(path: str | Path) -> list[CadenceWindow]:
    """Every window of the cadence log ``path``, in file order. A torn last line (the node
    killed mid-write) is skipped with a warning naming it; a line of another schema, a line
    that is not JSON or lacks a field is a ``CadenceLogError`` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_bytes().decode('utf-8', errors='replace')
    except OSError as err:
        msg = f'{path}: cannot read the cadence log: {err.strerror or err}'
        raise CadenceLogError(msg) from err
    lines = text.split('\n')
    torn = lines.pop()  # '' when the file ends with a newline, as every whole line does
    out = [_parse(path, n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if torn.strip():
        try:
            out.append(_parse(path, len(lines) + 1, torn))  # whole but for its newline
        except CadenceLogError:
            if not out and not torn.lstrip().startswith('{'):
                raise  # not a cadence log at all
            log.warning('%s: line %d is torn (the node stopped while writing it); skipped',
                        path, len(lines) + 1)
    return out


def _parse(path: Path, n: int, line: str) -> CadenceWindow:
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError) as err:
        msg = f'{path}: line {n}: not JSON ({" ".join(str(err).split())[:80]}); a cadence log ' \
              f'has one {CADENCE_SCHEMA} object per line'
        raise CadenceLogError(msg) from err
    schema = rec.get('schema') if isinstance(rec, dict) else None
    if schema != CADENCE_SCHEMA:
        msg = f'{path}: line {n}: schema {schema!r}, expected {CADENCE_SCHEMA!r}: not a ' \
              'cadence log of this ptr'
        raise CadenceLogError(msg)
    missing = [k for k in _FIELDS if k not in rec]
    if missing:
        msg = f'{path}: line {n}: no field {missing[0]!r} ({CADENCE_SCHEMA})'
        raise CadenceLogError(msg)
    return cast(CadenceWindow, rec)
