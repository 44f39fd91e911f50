"""What ``policy_node``'s parameters resolve to, as plain Python (no rclpy): typed, frozen
dataclasses the node keeps instead of loose values, and the checks made on them.
``ptr_ros.params`` declares the parameters (descriptions, ranges) and builds these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ptr_core.errors import PtrError
from ptr_core.inference import ExecutionConfig

__all__ = [
    'DEFAULT_COMMAND_TOPICS',
    'INTERFACES',
    'TRANSPORTS',
    'CameraParams',
    'ExtraStateParams',
    'PolicyNodeParams',
    'RunnerParams',
    'served_rate_warnings',
]

INTERFACES = ('trajectory', 'forward')
TRANSPORTS = ('auto', 'raw', 'compressed')
DEFAULT_COMMAND_TOPICS = {
    'trajectory': '/joint_trajectory_controller/joint_trajectory',
    'forward': '/forward_position_controller/commands',
}



@dataclass(frozen=True)
class RunnerParams:
    """What to serve: read before the checkpoint is loaded."""

    checkpoint: str
    device: str
    torch_threads: int  # 0: torch's default
    robot: str  # '': the checkpoint's only robot
    inference_process: bool = False  # infer in a child process instead of a thread


@dataclass(frozen=True)
class CameraParams:
    role: str
    topic: str
    compressed: bool  # CompressedImage (else Image)
    timeout_s: float
    depth: bool
    source_size: tuple[int, int] | None  # [H, W] as sent; None: locked to the first frame


@dataclass(frozen=True)
class ExtraStateParams:
    name: str
    topic: str
    type: str
    timeout_s: float
    joints: tuple[str, ...]


@dataclass(frozen=True)
class PolicyNodeParams:
    """Every control and observation parameter of ``policy_node``, resolved against the
    checkpoint's robot profile (rates, topics and K defaults filled in)."""

    rate_hz: float
    execution: ExecutionConfig  # K, temporal ensembling and its decay
    sampling_steps: int  # 0: the checkpoint's default
    interface: str
    command_topic: str
    trajectory_points: int  # 0: execute_steps
    max_step_change: float
    joint_limit_margin: float
    diagnostics_rate_hz: float
    state_topic: str
    state_timeout_s: float
    cameras: Mapping[str, CameraParams]
    extras: Mapping[str, ExtraStateParams]
    max_step_accel: float = 0.0  # largest change of the per-step change; 0: off
    joint_limit_tolerance: float = 0.05  # a measured state further outside the limits: fault
    action_limits_file: str = ''  # YAML name: [lower, upper] for actions (ptr_ros.safety)
    allow_rate_mismatch: bool = False  # serve at a rate other than the training rate
    # SCHED_FIFO priority of the control thread (ros2_control's default for its update loop);
    # refused without CAP_SYS_NICE or an rtprio limit: a warning, normal priority; 0: normal
    control_priority: int = 50
    cadence_log: str = ''  # a JSON-lines file each cadence window is appended to; '': off
    cadence_window_s: float = 60.0  # the cadence report's window (diagnostics, log)

    def __post_init__(self) -> None:
        if self.interface not in INTERFACES:
            msg = f'parameter command_interface: {self.interface!r} is not one of ' \
                  f'{", ".join(INTERFACES)}'
            raise PtrError(msg)
        if self.rate_hz <= 0:
            msg = f'parameter control_rate_hz: the control rate must be > 0, got {self.rate_hz}'
            raise PtrError(msg)

    @property
    def execute_steps(self) -> int:
        return self.execution.execute_steps

    @property
    def points(self) -> int:
        """Points per published command: a trajectory's horizon, or 1 for forward commands."""
        if self.interface != 'trajectory':
            return 1
        return self.trajectory_points or self.execution.execute_steps


def served_rate_warnings(
    p: PolicyNodeParams, trained_rate_hz: float, chunk_length: int,
) -> list[str]:
    """Settings that work but change what the policy was trained for, one line each; a control
    rate other than the training rate is refused unless ``allow_rate_mismatch``."""
    warnings = []
    if abs(p.rate_hz - trained_rate_hz) > 1e-6:
        # Nothing is resampled: the history would be spaced 1/rate, not 1/trained s, and
        # each chunk action would last 1/rate s -- another motion than the one learned.
        what = (f'control_rate_hz {p.rate_hz:g} differs from the training rate '
                f'{trained_rate_hz:g} Hz: observations would be sampled and actions played '
                f'{p.rate_hz / trained_rate_hz:.3g}x as fast as in training')
        if not p.allow_rate_mismatch:
            msg = f'{what}; serve at {trained_rate_hz:g} Hz (or allow_rate_mismatch:=true to ' \
                  'measure latency only)'
            raise PtrError(msg)
        warnings.append(f'{what} (allow_rate_mismatch: for benchmarks only)')
    if p.execute_steps >= chunk_length:
        warnings.append(
            f'execute_steps {p.execute_steps} >= chunk length {chunk_length}: chunks cannot '
            'overlap, so motion pauses while the next chunk is computed')
    return warnings
