"""The newest observation of every source, merged as ingest merges it (plain Python, no rclpy).

``ObservationStore`` takes the messages the node subscribes to -- joint states (one topic,
merged by joint name, or one topic per arm group), extra states, camera frames -- checks and
decodes them with the code ingestion uses (``bag_tools.observation`` through
``ptr_ros.safety``'s checks), marks each accepted source in the ``SafetyGate`` watchdog and
counts refusals. The control tick reads ``state_vector()``, the images and the receipt times.

Joint states from several drivers on one topic (arm and gripper) are merged by name: the state
is complete once every joint was named, and as old as its oldest joint -- a silent gripper
driver trips the watchdog. Times are monotonic seconds given by the caller.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.errors import BagToolsError
from bag_tools.observation import extra_state_values, joint_positions, stamp_ns
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_core.history import ObservationHistory
from ptr_ros.safety import (
    RejectedMessageError,
    RejectionCounter,
    SafetyGate,
    check_image,
    check_joint_states,
    check_values,
)
from ptr_ros.settings import CameraParams, ExtraStateParams

__all__ = ['JOINT_STATES', 'ObservationStore', 'state_sources']

JOINT_STATES = 'joint_states'
FloatArray = npt.NDArray[np.float64]


def state_sources(profile: RobotProfile) -> list[str]:
    """Watchdog sources of the joint states: one per arm group of an arm-group profile."""
    if not profile.multi_arm:
        return [JOINT_STATES]
    return [f'{JOINT_STATES}/{g.name}' for g in profile.groups]


class ObservationStore:
    """Newest joints, extras and frames; ``warn(line)`` is called (throttled) per refusal kind."""

    def __init__(self, profile: RobotProfile, *, gate: SafetyGate, image_size: tuple[int, int],
                 cameras: Mapping[str, CameraParams], extras: Mapping[str, ExtraStateParams],
                 channels: Mapping[str, int], warn: Callable[[str], None]) -> None:
        self.profile = profile
        self.gate = gate
        self.image_size = image_size
        self.cameras, self.extras, self.channels = cameras, extras, dict(channels)
        self._warn = warn
        self.lock = threading.RLock()  # held for updates, never while decoding
        self.rejections = RejectionCounter()
        self.received: Counter[str] = Counter()  # accepted messages by source
        self.last_stamps: dict[str, int | None] = {}  # header stamp (ns) of the newest accepted
        self._last_log: dict[tuple[str, str], float] = {}
        # A camera's resolution as sent: from source_size, else locked to its first frame.
        self._source_sizes = {r: c.source_size for r, c in cameras.items()}
        n = len(profile.joints)
        self.joints: FloatArray | None = None
        self._parts = np.full(n, np.nan)  # merged by joint name
        self._seen = np.full(n, -np.inf)  # receipt time per joint
        self._groups: list[FloatArray | None] = [None] * len(profile.groups)
        self._extra: dict[str, FloatArray] = {}
        self.images: dict[str, npt.NDArray[Any]] = {}
        self.newest = 0.0  # receipt time of the newest accepted message

    def reject(self, source: str, reason: str, detail: str, now: float) -> None:
        """Count a refused message under a fixed ``reason`` (a bounded set of diagnostics keys)
        and warn with the ``detail``, at most every 2 s per (source, reason)."""
        n = self.rejections.add(source, reason)
        if now - self._last_log.get((source, reason), -np.inf) >= 2.0:
            self._last_log[(source, reason)] = now
            self._warn(f'rejected {source} message: {reason}: {detail} ({n} so far)')

    def _accept(self, source: str, msg: Any, now: float) -> None:
        self.newest = max(self.newest, now)
        self.received[source] += 1
        self.last_stamps[source] = stamp_ns(msg)

    def on_joint_states(self, msg: Any, now: float) -> None:
        try:
            joints, named = check_joint_states(msg, self.profile.joints)
        except RejectedMessageError as err:
            self.reject(JOINT_STATES, err.reason, err.detail, now)
            return
        with self.lock:
            self._parts[named] = joints[named]
            self._seen[named] = now
            self._accept(JOINT_STATES, msg, now)
            complete = bool(np.isfinite(self._seen).all())
            if complete:
                self.joints = self._parts.copy()
            oldest = float(self._seen.min())
        if complete:
            self.gate.mark(JOINT_STATES, oldest)

    def on_group_state(self, k: int, msg: Any, now: float) -> None:
        """Arm group ``k``'s JointState (the group's own joint names)."""
        g = self.profile.groups[k]
        source = f'{JOINT_STATES}/{g.name}'
        try:
            joints = check_values(joint_positions(msg, g.joints), 'positions')
        except BagToolsError as err:
            self.reject(source, 'wrong joint set', str(err), now)
            return
        except RejectedMessageError as err:
            self.reject(source, err.reason, err.detail, now)
            return
        sizes = [len(grp.joints) for grp in self.profile.groups]
        start = sum(sizes[:k])
        with self.lock:
            self._groups[k] = joints
            self._seen[start:start + sizes[k]] = now
            if all(j is not None for j in self._groups):
                self.joints = np.concatenate(self._groups)  # type: ignore[arg-type]
            self._accept(source, msg, now)
        self.gate.mark(source, now)

    def on_extra_state(self, name: str, msg: Any, now: float) -> None:
        source = f'extra/{name}'
        extra = self.extras[name]
        try:
            values = check_values(
                extra_state_values(msg, extra.type, joints=extra.joints), 'values')
        except BagToolsError as err:
            self.reject(source, 'undecodable', str(err), now)
            return
        except RejectedMessageError as err:
            self.reject(source, err.reason, err.detail, now)
            return
        with self.lock:
            self._extra[name] = values
            self._accept(source, msg, now)
        self.gate.mark(source, now)

    def on_image(self, role: str, msg: Any, now: float) -> None:
        source = f'camera/{role}'
        expected = self._source_sizes[role]
        try:
            frame, dims = check_image(
                msg, role=role, expected=expected, size=self.image_size,
                depth=self.cameras[role].depth, channels=self.channels.get(role))
        except RejectedMessageError as err:
            self.reject(source, err.reason, err.detail, now)
            return
        if expected is None and dims is not None:
            self._source_sizes[role] = dims  # the camera's resolution is fixed from here on
        with self.lock:
            self.images[role] = frame
            self._accept(source, msg, now)
        self.gate.mark(source, now)

    def state_vector(self) -> FloatArray:
        """Joint positions in profile order, then the extra-state values (the dataset's
        ``state`` row)."""
        with self.lock:
            if self.joints is None or len(self._extra) < len(self.profile.extra_state):
                msg = 'no joint state (or extra state) received yet'
                raise PtrError(msg)
            parts = [self.joints] + [self._extra[e.name] for e in self.profile.extra_state]
            return np.concatenate(parts)

    def state_age(self, now: float) -> float:
        """Seconds since the oldest joint was last heard of (inf before every joint was)."""
        with self.lock:
            return now - float(self._seen.min())

    def sample(self, history: ObservationHistory) -> None:
        """Append the newest observation to ``history`` (once per control tick)."""
        with self.lock:
            history.push(self.state_vector(), dict(self.images), self.newest)

    def measured(self, action_names: list[str]) -> FloatArray:
        """Measured positions in action order (NaN for actions that are not joints)."""
        with self.lock:
            current: FloatArray | list[float] = self.joints if self.joints is not None else []
        joints = dict(zip(self.profile.joints, current))
        return np.array([joints.get(n, np.nan) for n in action_names], dtype=np.float64)
