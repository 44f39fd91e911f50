"""The safety layer of the policy node, as plain Python (no rclpy): testable without ROS.

* ``SafetyGate``: the node's state machine. It starts **disabled**; ``enable()`` arms it;
  ``stop()`` disables at once. While enabled it is ``waiting`` until every observation has sent
  its first message, ``stale`` while any observation is older than its timeout, else ``running``.
  Only ``running`` may publish a command.
* ``clamp_trajectory``: every commanded point is clamped to the joint limits and to a maximum
  change per control step relative to the point before it (the first one relative to the last
  command, or the measured position when nothing was commanded yet).
* ``RejectionCounter``: messages refused before they reach the model, by source and reason.

Times are seconds on one monotonic clock chosen by the caller.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = [
    'NodeState',
    'RejectionCounter',
    'SafetyGate',
    'SafetyStatus',
    'clamp_trajectory',
]

FloatArray = npt.NDArray[np.float64]


class NodeState(str, Enum):
    """What the policy node is doing; only ``RUNNING`` publishes commands."""

    DISABLED = 'disabled'
    WAITING = 'waiting'
    RUNNING = 'running'
    STALE = 'stale'


@dataclass(frozen=True)
class SafetyStatus:
    state: NodeState
    reason: str
    ages: dict[str, float | None]  # observation -> seconds since its last message (None: never)


@dataclass
class SafetyGate:
    """Enable/stop latch plus a per-observation watchdog.

    ``timeouts`` maps each observation name (a topic or camera role) to the age in seconds past
    which it is stale. ``mark(name, now)`` records a message.
    """

    timeouts: Mapping[str, float]
    _last: dict[str, float] = field(default_factory=dict, init=False)
    _enabled: bool = field(default=False, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        for name, timeout in self.timeouts.items():
            if not timeout > 0:
                msg = f'observation {name!r}: timeout must be > 0 s, got {timeout!r}'
                raise PtrError(msg)

    @property
    def enabled(self) -> bool:
        with self._lock:
            return self._enabled

    def enable(self) -> None:
        with self._lock:
            self._enabled = True

    def stop(self) -> None:
        with self._lock:
            self._enabled = False

    def mark(self, name: str, now: float) -> None:
        if name not in self.timeouts:
            msg = f'observation {name!r} is not watched (known: {sorted(self.timeouts)})'
            raise PtrError(msg)
        with self._lock:
            self._last[name] = now

    def ages(self, now: float) -> dict[str, float | None]:
        with self._lock:
            last = dict(self._last)
        return {name: (now - last[name]) if name in last else None for name in self.timeouts}

    def evaluate(self, now: float) -> SafetyStatus:
        """The state at ``now`` and, when not running, why."""
        ages = self.ages(now)
        missing = [name for name, age in ages.items() if age is None]
        stale = [
            f'{name} ({age:.3f} s > {self.timeouts[name]:.3f} s)'
            for name, age in ages.items()
            if age is not None and age > self.timeouts[name]
        ]
        if not self.enabled:
            return SafetyStatus(NodeState.DISABLED, 'call ~/enable to start', ages)
        if missing:
            return SafetyStatus(NodeState.WAITING, f'no message yet on {", ".join(missing)}', ages)
        if stale:
            return SafetyStatus(NodeState.STALE, f'stale: {", ".join(stale)}', ages)
        return SafetyStatus(NodeState.RUNNING, '', ages)


def clamp_trajectory(
    points: npt.ArrayLike,
    previous: npt.ArrayLike,
    *,
    lower: npt.ArrayLike,
    upper: npt.ArrayLike,
    max_step: npt.ArrayLike,
) -> FloatArray:
    """Clamp ``points [N, D]`` to ``[lower, upper]`` and to ``|p[i] - p[i-1]| <= max_step``.

    ``p[-1]`` is ``previous [D]`` (the last command, or the measured position). NaN targets hold
    the previous value. Limits may be ``±inf`` for unlimited dimensions.
    """
    pts = np.array(points, dtype=np.float64, ndmin=2)
    prev = np.asarray(previous, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), prev.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), prev.shape)
    step = np.broadcast_to(np.asarray(max_step, dtype=np.float64), prev.shape)
    if pts.shape[1] != prev.shape[0]:
        msg = f'command has {pts.shape[1]} values, the previous command has {prev.shape[0]}'
        raise PtrError(msg)
    if np.any(step < 0) or np.any(lo > hi):
        msg = 'clamp: max_step must be >= 0 and lower <= upper'
        raise PtrError(msg)
    # A previous value outside the limits (the arm was moved there by hand) may only move
    # back towards the range; clipping it first would allow a jump of max_step + distance.
    out = np.empty_like(pts)
    last = prev
    for i, target in enumerate(pts):
        target = np.where(np.isnan(target), last, target)
        stepped = np.clip(target, last - step, last + step)
        bounded = np.clip(stepped, lo, hi)
        # Never let the limit clip itself produce a jump bigger than max_step.
        out[i] = np.clip(bounded, last - step, last + step)
        last = out[i]
    return out


class RejectionCounter:
    """Thread-safe counts of refused messages by ``(source, reason)``."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def add(self, source: str, reason: str) -> int:
        with self._lock:
            self._counts[(source, reason)] += 1
            return self._counts[(source, reason)]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def by_source(self) -> dict[str, int]:
        with self._lock:
            out: Counter[str] = Counter()
            for (source, _), n in self._counts.items():
                out[source] += n
            return dict(out)

    def items(self) -> list[tuple[str, str, int]]:
        with self._lock:
            return sorted((s, r, n) for (s, r), n in self._counts.items())
