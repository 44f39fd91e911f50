"""The safety layer of the policy node, as plain Python (no rclpy): testable without ROS.

* ``SafetyGate``: the node's state machine. It starts **disabled**; ``enable()`` arms it;
  ``stop()`` disables at once; ``fault(reason)`` disables and latches ``fault`` until the next
  ``enable()``. While enabled it is ``waiting`` until every observation has sent its first
  message, ``stale`` while any observation is older than its timeout, else ``running``. Only
  ``running`` may publish a command.
* ``CommandLimiter``: what may be published. Every point lies inside the joint limits (always,
  whatever the measured state), within ``max_step`` of the point before it -- the first one of
  the last *published* command -- and, when ``max_accel`` is set, changes its per-step change by
  at most ``max_accel`` (ramping in from rest after a hold). After any hold the first point is
  within ``max_step`` of the measured position and of the last published command (any of its
  points: the controller may have finished that trajectory while we held); when both bounds
  cannot hold at once (the arm moved while held) it raises ``SafetyFaultError``, not a jump.
* ``limit_violation``: a measured state outside the joint limits by more than a tolerance.
* ``clamp_trajectory``: the limits and per-step bound for one plan, relative to one point.
* ``command_limits``: every commanded dimension's bound (joint limits, the profile's action
  limits, ``action_limits_file``); a dimension without one is refused, never served unlimited.
* ``RejectionCounter``: messages refused before they reach the model, by source and reason.

Times are seconds on one monotonic clock chosen by the caller.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from bag_tools.errors import BagToolsError
from bag_tools.fileio import read_yaml
from bag_tools.observation import decode_image, image_dims, joint_positions
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError

if TYPE_CHECKING:
    from ptr_ros.worker import LatencyWindow

__all__ = [
    'CommandLimiter',
    'NodeState',
    'RejectedMessageError',
    'RejectionCounter',
    'SafetyFaultError',
    'SafetyGate',
    'SafetyStatus',
    'check_image',
    'check_joint_states',
    'check_values',
    'clamp_trajectory',
    'command_limits',
    'diagnostic_values',
    'limit_violation',
    'load_action_limits',
]

FloatArray = npt.NDArray[np.float64]


class NodeState(str, Enum):
    """What the policy node is doing; only ``RUNNING`` publishes commands."""

    DISABLED = 'disabled'
    WAITING = 'waiting'
    RUNNING = 'running'
    STALE = 'stale'
    FAULT = 'fault'  # latched: a state outside the limits, or the arm moved while held


class SafetyFaultError(PtrError):
    """A command cannot be made safe (the node latches ``fault`` until the next enable)."""


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
    _fault: str = field(default='', init=False)
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

    @property
    def faulted(self) -> bool:
        with self._lock:
            return bool(self._fault)

    def enable(self) -> None:
        """Arm the gate; clears a latched fault (the operator's decision)."""
        with self._lock:
            self._enabled = True
            self._fault = ''

    def stop(self) -> None:
        with self._lock:
            self._enabled = False

    def fault(self, reason: str) -> None:
        """Disable and latch ``fault`` with ``reason`` until the next ``enable()``."""
        with self._lock:
            self._enabled = False
            self._fault = reason

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
        with self._lock:
            enabled, fault = self._enabled, self._fault
        if fault:
            return SafetyStatus(NodeState.FAULT, f'{fault}; call ~/enable once it is fixed', ages)
        if not enabled:
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

    ``p[-1]`` is ``previous [D]``; a ``previous`` outside the limits is first brought inside
    (the limits are absolute: no point ever leaves them). NaN targets hold the previous value.
    Limits may be ``±inf`` for unlimited dimensions.
    """
    prev = np.asarray(previous, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), prev.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), prev.shape)
    limiter = CommandLimiter(lo, hi, max_step=max_step)
    return limiter.limit(np.array(points, dtype=np.float64, ndmin=2), prev, reference=prev)


def limit_violation(
    names: Sequence[str],
    measured: npt.ArrayLike,
    *,
    lower: npt.ArrayLike,
    upper: npt.ArrayLike,
    tolerance: float,
) -> str:
    """Why ``measured`` is implausible (outside ``[lower - tol, upper + tol]``), or ``''``.

    NaN entries (actions that are not joints) are not checked.
    """
    pos = np.asarray(measured, dtype=np.float64)
    lo = np.asarray(lower, dtype=np.float64) - tolerance
    hi = np.asarray(upper, dtype=np.float64) + tolerance
    bad = [i for i in range(len(pos)) if np.isfinite(pos[i]) and not lo[i] <= pos[i] <= hi[i]]
    if not bad:
        return ''
    shown = ', '.join(f'{names[i]} = {pos[i]:.4g} not in [{lo[i] + tolerance:.4g}, '
                      f'{hi[i] - tolerance:.4g}]' for i in bad[:4])
    return f'measured state outside the joint limits by more than {tolerance:g}: {shown}'


class CommandLimiter:
    """The last line before a command is published: joint limits, step and ramp bounds.

    ``limit(plan, measured)`` returns the points to publish; ``published(points)`` records what
    was published (the reference of the next step bound); ``hold()`` marks a hold (stale, stop,
    fault: the next plan ramps in from the measured position, from rest); ``forget()`` also
    drops the last published command (after an operator's ``~/enable`` following a fault).
    ``max_accel`` (per step per step; 0: off) yields only to the joint limits.
    """

    def __init__(
        self,
        lower: npt.ArrayLike,
        upper: npt.ArrayLike,
        *,
        max_step: npt.ArrayLike,
        max_accel: float = 0.0,
    ) -> None:
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        self.max_step = np.broadcast_to(np.asarray(max_step, dtype=np.float64),
                                        self.lower.shape).copy()
        self.max_accel = float(max_accel)
        if np.any(self.max_step < 0) or np.any(self.lower > self.upper) or self.max_accel < 0:
            msg = 'command limits: max_step and max_accel must be >= 0 and lower <= upper'
            raise PtrError(msg)
        self.last: FloatArray | None = None  # first point of the last published command
        self._delta = np.zeros_like(self.lower)  # its change from the one before
        self._origin: FloatArray | None = None  # what the last limit() started from
        self._span: tuple[FloatArray, FloatArray] | None = None  # of the last published points
        self._held = True

    def hold(self) -> None:
        self._held = True

    def forget(self) -> None:
        self.last = None
        self._span = None
        self._held = True

    def published(self, points: npt.ArrayLike) -> None:
        """Record ``points`` (the output of the last ``limit``) as published."""
        pts = np.array(points, dtype=np.float64, ndmin=2)
        first = pts[0]
        origin = self._origin if self._origin is not None else first
        self._delta = first - origin
        self.last = first
        self._span = (pts.min(axis=0), pts.max(axis=0))
        self._held = False

    def limit(
        self,
        plan: npt.ArrayLike,
        measured: npt.ArrayLike,
        *,
        reference: npt.ArrayLike | None = None,
    ) -> FloatArray:
        """Bound ``plan [N, D]``; ``measured [D]`` (NaN where unknown) anchors a start after a
        hold. ``reference`` replaces the last published point (``clamp_trajectory``)."""
        pts = np.array(plan, dtype=np.float64, ndmin=2)
        pos = np.asarray(measured, dtype=np.float64)
        if pts.shape[1] != self.lower.shape[0] or pos.shape != self.lower.shape:
            msg = (f'command has {pts.shape[1]} values, measured {pos.shape[0]}, the limits '
                   f'{self.lower.shape[0]}')
            raise PtrError(msg)
        lo, hi, step = self.lower, self.upper, self.max_step
        last = self.last if reference is None else np.asarray(reference, dtype=np.float64)
        if last is not None and not self._held:
            box_lo, box_hi, delta = last - step, last + step, self._delta
        else:  # after a hold: from the measured position (else the last command), at rest
            start = np.where(np.isfinite(pos), pos, last if last is not None else pts[0])
            start = np.where(np.isnan(start), pts[0], start)
            start = np.clip(start, lo, hi)
            box_lo, box_hi, delta = start - step, start + step, np.zeros_like(start)
            if self._span is not None and reference is None:
                # The controller may still have run the rest of the last published trajectory
                # while we held: any of its points is where the arm may rightly be.
                span_lo, span_hi = self._span
                box_lo = np.maximum(box_lo, span_lo - step)
                box_hi = np.minimum(box_hi, span_hi + step)
                if np.any(box_lo > box_hi):
                    i = int(np.argmax(box_lo - box_hi))
                    gap = max(span_lo[i] - start[i], start[i] - span_hi[i])
                    msg = (f'the measured position moved {gap:.4g} away from the last '
                           f'command while held (dimension {i}; more than 2 x max_step '
                           f'{step[i]:g}): no command can follow both')
                    raise SafetyFaultError(msg)
            last = start
        self._origin = last
        out = np.empty_like(pts)
        for i, target in enumerate(pts):
            target = np.where(np.isnan(target), last, target)
            if i:
                box_lo, box_hi = last - step, last + step
            hard_lo, hard_hi = np.maximum(box_lo, lo), np.minimum(box_hi, hi)  # never empty
            if self.max_accel > 0:  # soft: yields to the limits and the step bound
                target = np.clip(target, last + delta - self.max_accel,
                                 last + delta + self.max_accel)
            point = np.clip(target, hard_lo, hard_hi)
            delta, last = point - last, point
            out[i] = point
        if np.isnan(out).any():  # NaN actions with nothing to hold (no command, no state yet)
            msg = 'the policy returned NaN actions and there is no position to hold'
            raise SafetyFaultError(msg)
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


def diagnostic_values(
    status: SafetyStatus,
    *,
    robot: str,
    interface: str,
    commands_published: int,
    chunks: int,
    rejections: RejectionCounter,
    received: Mapping[str, int],
    latencies: Mapping[str, LatencyWindow],
    last_error: str,
) -> dict[str, str]:
    """The policy node's ``/diagnostics`` key/values: state, counters, every source's age,
    latency percentiles (p50/p99 of each window in ``latencies``, by label) and rejections."""
    values = {'state': status.state.value, 'reason': status.reason,
              'robot': robot, 'command_interface': interface,
              'commands_published': str(commands_published),
              'chunks': str(chunks),
              'rejected_total': str(rejections.total)}
    for name, age in status.ages.items():
        values[f'age.{name}'] = 'never' if age is None else f'{age:.4f}'
    for label, window in latencies.items():
        for q in (50, 99):
            got = window.percentile_ms(q)
            values[f'{label}.p{q}'] = 'n/a' if got is None else f'{got:.3f}'
    for source, count in sorted(received.items()):
        values[f'received.{source}'] = str(count)
    for source, count in rejections.by_source().items():
        values[f'rejected.{source}'] = str(count)
    for source, reason, count in rejections.items():
        values[f'rejected.{source}: {reason}'] = str(count)
    if last_error:
        values['last_inference_error'] = last_error
    return values


class RejectedMessageError(PtrError):
    """An observation message the node refuses: ``reason`` is one of a fixed set (a
    diagnostics key), ``detail`` says what was wrong with this message."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f'{reason}: {detail}')
        self.reason, self.detail = reason, detail


def check_values(values: npt.NDArray[np.float64], what: str) -> npt.NDArray[np.float64]:
    """``values``, refused as a whole when any is NaN or infinite."""
    if not np.all(np.isfinite(values)):
        raise RejectedMessageError('non-finite value', f'{what} {values.tolist()}')
    return values


def check_joint_states(
    msg: Any, joints: Sequence[str],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """The positions of ``joints`` a JointState names (NaN for the others) and which it names;
    refused when it names none of them, a name twice, positions and names differ in number,
    or a named one is not finite."""
    names = list(getattr(msg, 'name', None) or [])
    count = len(getattr(msg, 'position', None) or [])
    if count != len(names):
        raise RejectedMessageError('malformed', f'{count} positions for {len(names)} names '
                                   f'{names[:8]}')
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RejectedMessageError('malformed', f'joint names repeated: {twice}')
    try:
        positions = joint_positions(msg, joints, allow_missing=True)
    except BagToolsError as err:
        raise RejectedMessageError('wrong joint set', str(err)) from err
    named = np.isin(np.array(joints), np.array(list(msg.name), dtype=object))
    if not named.any():
        raise RejectedMessageError('wrong joint set', f'names {list(msg.name)}, none of the '
                                   f'profile joints {list(joints)}')
    if not np.all(np.isfinite(positions[named])):
        raise RejectedMessageError('non-finite value', f'positions {positions.tolist()}')
    return positions, named


def check_image(
    msg: Any, *, role: str, expected: tuple[int, int] | None, size: tuple[int, int],
    depth: bool, channels: int | None,
) -> tuple[npt.NDArray[Any], tuple[int, int] | None]:
    """A camera message decoded to ``size`` (the model's), and its resolution as sent;
    refused when that is not ``expected`` (``cameras.<role>.source_size``), it does not decode,
    or the frame's channels are not the model's ``channels``."""
    dims = image_dims(msg)
    if dims is not None and expected is not None and dims != expected:
        raise RejectedMessageError('wrong image size', f'{dims[0]}x{dims[1]}, expected '
                                   f'{expected[0]}x{expected[1]} (cameras.{role}.source_size)')
    try:
        frame = decode_image(msg, size=size, depth=depth)
    except BagToolsError as err:
        raise RejectedMessageError('undecodable', str(err)) from err
    want = frame.shape[2] if channels is None else channels
    if frame.shape != (*size, want):
        raise RejectedMessageError('wrong channels', f'decoded shape {frame.shape}, the model '
                                   f'needs {(*size, want)}')
    return frame, dims


def command_limits(
    profile: RobotProfile, action_names: list[str], margin: float,
    overrides: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per-action [lower, upper] command bounds, moved ``margin`` inside (never past their
    midpoint). A dimension's bound is the tightest of: its joint's limits (when the action is
    named after a joint), the profile's ``action.limits`` / ``extra_action[].limits``, and
    ``overrides`` (the node's ``action_limits_file``). A dimension with none of them is refused:
    ``PtrError`` names every such dimension -- no command is ever served unlimited."""
    bounds: dict[str, list[tuple[float, float]]] = {n: [] for n in action_names}
    for joint, lo, hi in zip(profile.joints, profile.joint_lower, profile.joint_upper):
        if joint in bounds:
            bounds[joint].append((lo, hi))
    declared = [(g.action_dim_names, g.action.lower, g.action.upper) for g in profile.groups]
    declared += [(e.dim_names, e.lower, e.upper) for e in profile.extra_action]
    for names, lows, highs in declared:
        for n, lo, hi in zip(names, lows, highs):
            bounds[n].append((lo, hi))
    for n, (lo, hi) in (overrides or {}).items():
        if n not in bounds:
            msg = f'action_limits_file: {n!r} is not an action of robot {profile.robot!r} ' \
                  f'(actions: {", ".join(action_names)})'
            raise PtrError(msg)
        bounds[n].append((lo, hi))
    missing = [n for n in action_names if not bounds[n]]
    if missing:
        msg = (f'robot {profile.robot!r}: no command limit for action dimension(s) '
               f'{", ".join(missing)} (not joints of the profile): set action.limits (or '
               f'extra_action[].limits) in the robot profile, or the node parameter '
               f'action_limits_file; refusing to serve unlimited commands')
        raise PtrError(msg)
    lower = np.array([max(lo for lo, _ in bounds[n]) for n in action_names], dtype=np.float64)
    upper = np.array([min(hi for _, hi in bounds[n]) for n in action_names], dtype=np.float64)
    empty = [n for n, lo, hi in zip(action_names, lower, upper) if lo > hi]
    if empty:
        msg = (f'robot {profile.robot!r}: the command limits of {", ".join(empty)} do not '
               f'overlap (joint limits vs action limits); refusing to serve')
        raise PtrError(msg)
    mid = (lower + upper) / 2
    return np.minimum(lower + margin, mid), np.maximum(upper - margin, mid)


def load_action_limits(path: str) -> dict[str, tuple[float, float]]:
    """``action_limits_file``: a YAML mapping ``name: [lower, upper]`` (finite, lower <= upper)."""
    if not path:
        return {}
    data = read_yaml(path, 'action_limits_file', want=None, error=PtrError)
    if not isinstance(data, dict):
        msg = f'{path}: expected a mapping name: [lower, upper], got {type(data).__name__}'
        raise PtrError(msg)
    out: dict[str, tuple[float, float]] = {}
    for name, pair in data.items():
        ok = (isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
              and all(math.isfinite(v) for v in pair) and pair[0] <= pair[1])
        if not ok:
            msg = f'{path}: {name}: expected [lower, upper], finite, lower <= upper, got {pair!r}'
            raise PtrError(msg)
        out[str(name)] = (float(pair[0]), float(pair[1]))
    return out
