"""A kinematic arm and its camera, as plain Python (no rclpy): the model behind ``sim_arm_node``.

``SimArm`` integrates joint positions towards a setpoint with a velocity limit and clamps them to
the joint limits. The setpoint comes from a forward position command (``set_target``) or from a
timed trajectory (``set_trajectory``: points with ``time_from_start``, linearly interpolated from
the position at the moment it arrives, as ``joint_trajectory_controller`` does).

``render_arm`` draws the arm as a planar chain seen from the side (the first three joints bend
the links; further joints tint the end effector), so a policy that looks at the image sees the
configuration. It is deterministic: the same positions give the same pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = ['SimArm', 'end_effector', 'render_arm']

FloatArray = npt.NDArray[np.float64]


class SimArm:
    """Joint positions following commands under a velocity limit, within joint limits."""

    def __init__(
        self,
        joint_names: Sequence[str],
        *,
        lower: Sequence[float],
        upper: Sequence[float],
        initial: Sequence[float] | None = None,
        max_velocity: float = 2.0,
    ) -> None:
        n = len(joint_names)
        if n == 0 or len(lower) != n or len(upper) != n:
            msg = f'sim arm: {n} joints but {len(lower)} lower / {len(upper)} upper limits'
            raise PtrError(msg)
        self.joint_names = list(joint_names)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        start = np.zeros(n) if initial is None or len(initial) == 0 else np.asarray(initial, float)
        if start.shape != (n,):
            msg = f'sim arm: {len(start)} initial positions for {n} joints'
            raise PtrError(msg)
        self.position: FloatArray = np.clip(start, self.lower, self.upper)
        self.velocity: FloatArray = np.zeros(n)
        self.max_velocity = float(max_velocity)
        self._target: FloatArray = self.position.copy()
        self._trajectory: tuple[float, FloatArray, FloatArray] | None = None  # t0, times, points
        self.commands_received = 0

    def set_target(self, target: Sequence[float]) -> None:
        """A forward position command: one value per joint, in joint order."""
        arr = np.asarray(target, dtype=np.float64)
        if arr.shape != self.position.shape:
            msg = f'sim arm: command has {arr.size} values for {self.position.size} joints'
            raise PtrError(msg)
        self._trajectory = None
        self._target = arr
        self.commands_received += 1

    def set_trajectory(
        self, now: float, times: Sequence[float], points: npt.ArrayLike
    ) -> None:
        """A timed trajectory starting at ``now``; ``points [N, n_joints]`` at ``times [N]``."""
        pts = np.array(points, dtype=np.float64, ndmin=2)
        t = np.asarray(times, dtype=np.float64)
        if pts.shape[0] != t.shape[0] or pts.shape[1] != self.position.size or len(t) == 0:
            msg = f'sim arm: trajectory of shape {pts.shape} with {len(t)} times does not fit ' \
                  f'{self.position.size} joints'
            raise PtrError(msg)
        if np.any(np.diff(t) <= 0) or t[0] < 0:
            msg = 'sim arm: trajectory times must be >= 0 and increasing'
            raise PtrError(msg)
        # Interpolate from where the arm is now (time 0) through the points.
        self._trajectory = (now, np.concatenate([[0.0], t]), np.vstack([self.position, pts]))
        self.commands_received += 1

    def setpoint(self, now: float) -> FloatArray:
        if self._trajectory is None:
            return self._target
        t0, times, points = self._trajectory
        rel = now - t0
        return np.array([np.interp(rel, times, points[:, j]) for j in range(points.shape[1])])

    def step(self, now: float, dt: float) -> FloatArray:
        """Advance by ``dt`` seconds towards the setpoint at ``now``; returns the positions."""
        goal = np.clip(self.setpoint(now), self.lower, self.upper)
        limit = self.max_velocity * dt
        delta = np.clip(goal - self.position, -limit, limit)
        self.velocity = delta / dt if dt > 0 else np.zeros_like(delta)
        self.position = np.clip(self.position + delta, self.lower, self.upper)
        return self.position


def end_effector(positions: npt.ArrayLike) -> tuple[FloatArray, float]:
    """Planar forward kinematics of the drawn arm: tip ``[x, y, z]`` (m, links 0.3 m, in the
    x-z plane) and its pitch (rad); the arm the camera shows, as an extra observation."""
    q = np.asarray(positions, dtype=np.float64)[:3]
    angles = np.pi / 2 - np.cumsum(q)  # straight up at zero, like render_arm
    x = float(np.sum(0.3 * np.cos(angles)))
    z = float(np.sum(0.3 * np.sin(angles)))
    return np.array([x, 0.0, z]), float(angles[-1]) if len(angles) else 0.0


_COLORS = [(230, 90, 60), (60, 200, 90), (70, 110, 240), (230, 200, 40), (200, 60, 200)]


def render_arm(positions: npt.ArrayLike, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """An ``[H, W, 3]`` rgb8 side view of the arm at ``positions`` (radians)."""
    height, width = size
    img = np.full((height, width, 3), 30, dtype=np.uint8)
    cv2.line(img, (0, height - 2), (width - 1, height - 2), (120, 120, 120), 1)
    q = np.asarray(positions, dtype=np.float64)
    links = q[:3] if len(q) >= 1 else np.zeros(1)
    length = 0.9 * min(height, width) / (2 * max(len(links), 1))
    x, y = width / 2.0, height - 3.0
    angle = -np.pi / 2  # straight up at zero
    thickness = max(1, min(height, width) // 24)
    for i, qi in enumerate(links):
        angle += qi
        nx, ny = x + length * np.cos(angle), y + length * np.sin(angle)
        cv2.line(img, (round(x), round(y)), (round(nx), round(ny)), _COLORS[i % 5], thickness)
        cv2.circle(img, (round(x), round(y)), thickness, (240, 240, 240), -1)
        x, y = nx, ny
    # Joints past the third tint the end effector: hue from their mean position.
    extra = float(np.mean(q[3:])) if len(q) > 3 else 0.0
    shade = int(np.clip(128 + 60 * extra, 0, 255))
    cv2.circle(img, (round(x), round(y)), thickness + 1, (shade, 255 - shade, 200), -1)
    return img
