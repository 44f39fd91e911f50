"""Time alignment onto a fixed grid at the control rate, and the per-topic sync report.

Streams are (time ns, value) sequences already sorted by time. The grid is
``start + k * period`` (int64 ns). Joint states (and extra observations) are linearly
interpolated between the samples that bracket a grid time; images and commands are held: the
latest sample at or before the grid time (images only within a tolerance).

Clock, decided per stream: a topic whose messages all carry a non-zero header stamp uses its
stamps (``header``). The reference clock is that of the first such stream (the state topic when
it is stamped). A stream without usable stamps -- a ``geometry_msgs/Twist`` on ``/cmd_vel``, a
video timed from the bag start -- and a stamped stream whose stamps are on another clock than
the reference (median offsets more than ``MAX_CLOCK_OFFSET_NS`` apart) use the bag's log time:
as it is (``log``) when the reference agrees with log time, else carried onto the reference's
clock (``log->header``: the log time plus the reference's stamp - log offset, interpolated
between its messages, so simulation time at any real-time factor lines up). One header-less
topic never drags the stamped ones off their clock. The report says which clock each topic used.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

__all__ = [
    'CLOCK_HEADER',
    'CLOCK_LOG',
    'CLOCK_MAPPED',
    'MAX_CLOCK_OFFSET_NS',
    'Stream',
    'TopicReport',
    'choose_clocks',
    'hold',
    'interp_weights',
    'interpolate',
    'make_grid',
    'report_held',
    'report_interpolated',
    'split_segments',
]

CLOCK_HEADER = 'header'
CLOCK_LOG = 'log'
CLOCK_MAPPED = 'log->header'
MAX_CLOCK_OFFSET_NS = 1_000_000_000


@dataclass(eq=False)  # identity: two streams may read one topic (state and action)
class Stream:
    """One topic's messages: log times, header stamps (None when absent) and payloads."""

    topic: str
    msgtype: str
    log_ns: list[int] = field(default_factory=list)
    stamp_ns: list[int | None] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    clock: str = CLOCK_LOG
    out_of_order: int = 0
    times: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    names_seen: list[str] = field(default_factory=list)  # joint names of the first message

    def __len__(self) -> int:
        return len(self.log_ns)

    def header_usable(self) -> bool:
        return bool(self.stamp_ns) and all(s is not None and s > 0 for s in self.stamp_ns)

    def median_offset_ns(self) -> float:
        stamps = np.asarray(self.stamp_ns, dtype=np.float64)
        return float(np.median(stamps - np.asarray(self.log_ns, dtype=np.float64)))

    def finalize(self, clock: str, times: npt.NDArray[np.int64] | None = None) -> None:
        """Pick the clock, then sort messages by it (stable: ties keep arrival order);
        ``times``: the message times on that clock when they are neither stamps nor log."""
        self.clock = clock
        if times is None:
            raw = self.stamp_ns if clock == CLOCK_HEADER else self.log_ns
            times = np.asarray(raw, dtype=np.int64)
        self.out_of_order = int(np.sum(np.diff(times) < 0)) if len(times) > 1 else 0
        order = np.argsort(times, kind='stable')
        self.times = times[order]
        if self.out_of_order:
            self.values = [self.values[i] for i in order]


def _log_to_header(ref: Stream) -> Callable[[list[int]], npt.NDArray[np.int64]]:
    """Log times -> the clock of ``ref``'s stamps: plus its stamp - log offset, interpolated
    between its messages (held beyond them)."""
    logs = np.asarray(ref.log_ns, np.int64)
    order = np.argsort(logs, kind='stable')
    logs = logs[order]
    offsets = (np.asarray(ref.stamp_ns, np.int64)[order] - logs).astype(np.float64)

    def mapped(log_ns: list[int]) -> npt.NDArray[np.int64]:
        t = np.asarray(log_ns, np.int64)
        shift = np.interp((t - logs[0]).astype(np.float64), (logs - logs[0]).astype(np.float64),
                          offsets)
        out: npt.NDArray[np.int64] = t + np.round(shift).astype(np.int64)
        return out

    return mapped


def choose_clocks(streams: list[Stream]) -> None:
    """Finalize every stream with its own clock (see the module docstring)."""
    usable = [s for s in streams if len(s) and s.header_usable()]
    if not usable:
        for s in streams:
            s.finalize(CLOCK_LOG)
        return
    ref = usable[0]
    offset = ref.median_offset_ns()
    same = {id(s) for s in usable if abs(s.median_offset_ns() - offset) < MAX_CLOCK_OFFSET_NS}
    on_log = abs(offset) < MAX_CLOCK_OFFSET_NS
    mapped = _log_to_header(ref)
    for s in streams:
        if id(s) in same:
            s.finalize(CLOCK_HEADER)
        elif on_log or not len(s):
            s.finalize(CLOCK_LOG)
        else:
            s.finalize(CLOCK_MAPPED, mapped(s.log_ns))


def make_grid(start_ns: int, end_ns: int, period_ns: int) -> npt.NDArray[np.int64]:
    """``start + k * period`` for every k with the time <= ``end``."""
    if end_ns < start_ns:
        return np.zeros(0, np.int64)
    n = (end_ns - start_ns) // period_ns + 1
    return start_ns + np.arange(n, dtype=np.int64) * period_ns


def interp_weights(
    grid: npt.NDArray[np.int64], times: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """Bracketing sample indices ``lo``/``hi`` and weight ``w`` of ``hi`` for each grid time.

    Samples with the same time: the later one wins. Outside the samples' span the nearest
    sample gets all the weight.
    """
    hi = np.searchsorted(times, grid, side='right')  # first sample after g
    lo = np.clip(hi - 1, 0, len(times) - 1)
    hi = np.clip(hi, 0, len(times) - 1)
    # differences in int64 first: ns since the epoch do not fit a float64 mantissa
    span = (times[hi] - times[lo]).astype(np.float64)
    safe = np.where(span > 0, span, 1.0)
    w = np.where(span > 0, (grid - times[lo]).astype(np.float64) / safe, 0.0)
    return lo, hi, np.clip(w, 0.0, 1.0)


def interpolate(
    grid: npt.NDArray[np.int64], times: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Linear interpolation of ``values[N, D]`` at ``grid``; valid inside [times[0], times[-1]].

    A grid time that hits a sample returns that sample bit for bit.
    """
    if len(times) == 0:
        return np.zeros((len(grid), values.shape[1]), np.float64), np.zeros(len(grid), bool)
    valid = (grid >= times[0]) & (grid <= times[-1])
    lo, hi, w = interp_weights(grid, times)
    out = values[lo] * (1.0 - w[:, None]) + values[hi] * w[:, None]
    exact = times[lo] == grid
    out[exact] = values[lo[exact]]
    return out, valid


def hold(
    grid: npt.NDArray[np.int64], times: npt.NDArray[np.int64], tolerance_ns: int | None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Index of the latest sample at or before each grid time (-1 if none), and validity.

    With ``tolerance_ns``, a sample older than that is not valid (but its index is kept).
    """
    idx = np.searchsorted(times, grid, side='right').astype(np.int64) - 1
    valid = idx >= 0
    if tolerance_ns is not None and len(times):
        age = grid - times[np.clip(idx, 0, None)]
        valid &= age <= tolerance_ns
    return idx, valid


def split_segments(
    times: npt.NDArray[np.int64], *, max_gap_ns: int, markers: npt.NDArray[np.int64]
) -> list[tuple[int, int]]:
    """Split the state timeline at gaps longer than ``max_gap_ns`` and at marker times.

    Returns (first, last) sample times of each segment. A marker at time m starts a new
    segment with the first sample at or after m.
    """
    if len(times) == 0:
        return []
    cut = np.zeros(len(times), bool)
    cut[1:] = np.diff(times) > max_gap_ns
    for m in markers:
        i = int(np.searchsorted(times, m, side='left'))
        if 0 < i < len(times):
            cut[i] = True
    starts = np.flatnonzero(cut).tolist()
    bounds = [0, *starts, len(times)]
    return [(int(times[a]), int(times[b - 1])) for a, b in itertools.pairwise(bounds) if b > a]


class TopicReport(TypedDict):
    """Sync figures of one topic over one episode."""

    topic: str
    role: str  # state, action, camera:<role>, extra:<name>
    clock: str  # header | log | log->header (sync.py's docstring)
    messages: int  # messages inside the episode's time span
    rate_hz: float
    max_gap_s: float
    max_offset_s: float  # largest |stamp - grid| of the samples used
    held: int  # grid steps that reuse the previous step's sample
    dropped: int  # messages in the span no grid step used
    invalid: int  # grid steps without a valid sample (stale or not yet started)
    out_of_order: int  # header stamps that went backwards (re-sorted)


def _span_stats(times: npt.NDArray[np.int64], lo: int, hi: int) -> tuple[int, float, float]:
    inside = times[(times >= lo) & (times <= hi)]
    n = len(inside)
    if n < 2:
        return n, 0.0, 0.0
    span = (inside[-1] - inside[0]) / 1e9
    gap = float(np.max(np.diff(inside))) / 1e9
    return n, float((n - 1) / span) if span > 0 else 0.0, gap


def report_interpolated(
    stream: Stream, role: str, grid: npt.NDArray[np.int64], valid: npt.NDArray[np.bool_]
) -> TopicReport:
    times = stream.times
    n, rate, gap = _span_stats(times, int(grid[0]), int(grid[-1]))
    offset = 0.0
    if len(times) and valid.any():
        g = grid[valid]
        hi = np.clip(np.searchsorted(times, g, side='left'), 0, len(times) - 1)
        lo = np.clip(hi - 1, 0, len(times) - 1)
        nearest = np.minimum(np.abs(g - times[lo]), np.abs(times[hi] - g))
        offset = float(nearest.max()) / 1e9
    return TopicReport(
        topic=stream.topic, role=role, clock=stream.clock, messages=n, rate_hz=rate,
        max_gap_s=gap, max_offset_s=offset, held=0, dropped=0,
        invalid=int((~valid).sum()), out_of_order=stream.out_of_order,
    )


def report_held(
    stream: Stream,
    role: str,
    grid: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
) -> TopicReport:
    times = stream.times
    lo, hi = int(grid[0]), int(grid[-1])
    n, rate, gap = _span_stats(times, lo, hi)
    used = idx[valid]
    offset = float((grid[valid] - times[used]).max()) / 1e9 if len(used) else 0.0
    held = int(np.sum(valid[1:] & valid[:-1] & (idx[1:] == idx[:-1]))) if len(idx) > 1 else 0
    in_span = np.flatnonzero((times >= lo) & (times <= hi))
    dropped = len(np.setdiff1d(in_span, used))
    return TopicReport(
        topic=stream.topic, role=role, clock=stream.clock, messages=n, rate_hz=rate,
        max_gap_s=gap, max_offset_s=offset, held=held, dropped=dropped,
        invalid=int((~valid).sum()), out_of_order=stream.out_of_order,
    )
