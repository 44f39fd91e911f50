"""The policy node's control tick, as plain Python (no rclpy): testable without ROS.

``ControlLoop`` owns what happens between an observation and a command: the safety gate
(``ptr_ros.safety``), the observation store (``ptr_ros.observations``), the history, the
inference worker thread, chunk blending (``ptr_core.inference.ChunkExecutor``, which the
simulator evaluation runs too), the command limiter and the timing statistics. The node calls
``tick(planned)`` from its control thread (``ptr_ros.clock``) and gives it a ``publish(points,
planned)`` callback; ``planned`` is the tick's planned monotonic time, which the node stamps on
trajectories. Logging goes through ``log`` (an object with ``info``/``warning``/``error``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from bag_tools.observation import image_channels
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_core.history import ObservationHistory
from ptr_core.inference import ChunkExecutor
from ptr_ros.cadence import CadenceLog, CadenceReport, horizon_warning, period_jitter
from ptr_ros.observations import ObservationStore, state_sources
from ptr_ros.safety import (
    CommandLimiter,
    NodeState,
    SafetyFaultError,
    SafetyGate,
    SafetyStatus,
    diagnostic_values,
    limit_violation,
)
from ptr_ros.settings import PolicyNodeParams
from ptr_ros.worker import InferenceWorker, LatencyWindow

__all__ = ['ControlLoop', 'Logger', 'blank_observation']

FloatArray = npt.NDArray[np.float64]


class Logger(Protocol):
    def info(self, message: str) -> Any: ...
    def warning(self, message: str) -> Any: ...
    def error(self, message: str) -> Any: ...


@dataclass(frozen=True)
class _Job:
    epoch: int
    tick: int
    state: npt.NDArray[np.float32]
    images: dict[str, npt.NDArray[Any]]
    received: float  # newest observation's receipt time (monotonic)
    submitted: float


class ControlLoop:
    """Observations in, limited and blended commands out, one ``tick`` per control period."""

    def __init__(self, runner: Any, robot: str, profile: RobotProfile, params: PolicyNodeParams,
                 *, limits: tuple[FloatArray, FloatArray], channels: dict[str, int],
                 publish: Callable[[FloatArray, float], None], log: Logger,
                 changed: Callable[[], None] = lambda: None, model: Any = None,
                 checkpoint: str = '', node: str = '') -> None:
        self.runner, self.robot, self.profile, self.params = runner, robot, profile, params
        self.model = model or runner  # what infers: the runner, or a ProcessRunner of it
        self.action_names = list(profile.action_names)
        self.lower, self.upper = limits
        self._publish, self.log, self._changed = publish, log, changed
        self.lock = threading.RLock()
        timeouts = dict.fromkeys(state_sources(profile), params.state_timeout_s)
        timeouts.update({f'camera/{r}': c.timeout_s for r, c in params.cameras.items()})
        timeouts.update({f'extra/{n}': e.timeout_s for n, e in params.extras.items()})
        self.gate = SafetyGate(timeouts)
        self.store = ObservationStore(profile, gate=self.gate, image_size=runner.image_size,
                                      cameras=params.cameras, extras=params.extras,
                                      channels=channels, warn=log.warning)
        self.limiter = CommandLimiter(self.lower, self.upper, max_step=params.max_step_change,
                                      max_accel=params.max_step_accel)
        self.chunk_executor = ChunkExecutor(params.execution)
        self.history = ObservationHistory(int(runner.obs_horizon))
        self.tick_count = self._epoch = 0
        self.state, self.reason = NodeState.DISABLED, ''
        self._unused_chunks: list[float] = []  # receipt times of chunks not yet commanded
        self.publish_stamps: deque[float] = deque(maxlen=500)
        self.last_error = ''
        self._horizon_logged = self._error_logged = -np.inf
        self.latency = {k: LatencyWindow() for k in (
            'inference_ms', 'obs_to_ready_ms', 'obs_to_command_ms', 'state_age_ms')}
        self.cadence = CadenceReport(1.0 / params.rate_hz, params.cadence_window_s,
                                     log=self._cadence_log(checkpoint, node))
        self.commands_published = self.chunks_received = 0
        # In a thread, inference yields the CPU (nice +5); waiting on a child process, the thread
        # only takes results, and under control_priority it must not hold the GIL or the lock
        # while the scheduler has it waiting behind ordinary processes (priority inversion).
        remote = model is not None and model is not runner
        self.worker: InferenceWorker[_Job, Any] = InferenceWorker(
            self._infer, self._on_chunk, self._on_inference_error, nice=5,
            priority=max(params.control_priority - 1, 0) if remote else 0)

    # -- operator -------------------------------------------------------------------------
    def enable(self) -> tuple[bool, str]:
        """Arm the gate (clearing a fault: the operator's decision); refused, with the fault
        latched, when the measured state is outside the limits."""
        if not self.gate.enabled and hasattr(self.model, 'reset') and not self.worker.busy:
            self.model.reset()  # a new episode: the sampling noise restarts from its seed
        with self.lock:
            if self.gate.faulted:  # start over from the arm
                self.limiter.forget()
            self.gate.enable()
        why = self.check_state()
        status = self.gate.evaluate(time.monotonic())
        if why:
            return False, f'refused: {status.reason}'
        text = f'enabled; {status.state.value}' + (f': {status.reason}' if status.reason else '')
        self.log.info(text)
        return True, text

    def stop(self, why: str) -> None:
        self.gate.stop()
        self.reset(why)
        self.log.warning(why)

    def fault(self, why: str) -> None:
        """Latch the fault state: nothing is published until a new enable."""
        self.gate.fault(why)
        self.reset(why)
        self.log.error(f'fault: {why}')
        self._changed()

    def check_state(self) -> str:
        """Fault (and say why) when the measured joints are outside the limits by more than
        joint_limit_tolerance."""
        joints = self.store.joints
        if joints is None or not self.gate.enabled:
            return ''
        p = self.profile
        why = limit_violation(p.joints, joints, lower=p.joint_lower, upper=p.joint_upper,
                              tolerance=self.params.joint_limit_tolerance)
        if why:
            self.fault(why)
        return why

    def reset(self, why: str) -> None:
        """Drop every chunk and the history; results still in flight are discarded."""
        with self.lock:
            self._epoch += 1
            self.chunk_executor.reset()
            self.history.clear()
            self.limiter.hold()  # the next command ramps in from the measured position
            self._unused_chunks.clear()
            self.publish_stamps.clear()
            self.cadence.hold()  # the pause is no publish period
            self.state, self.reason = self.gate.evaluate(time.monotonic()).state, why

    # -- the tick -------------------------------------------------------------------------
    def tick(self, planned: float) -> None:
        """One control period, planned for ``planned`` (monotonic s)."""
        self.cadence.add('tick_late_ms', time.monotonic() - planned, planned)
        self.check_state()
        status = self.gate.evaluate(time.monotonic())
        self._follow(status)
        if status.state is not NodeState.RUNNING:
            return
        ages = [a for a in status.ages.values() if a is not None]
        self.cadence.add('obs_age_ms', max(ages, default=0.0), planned)
        with self.lock:
            self.tick_count += 1
            self._sample()
            self._request(self.tick_count)
            plan = self.chunk_executor.plan(self.tick_count, self.params.points)
            if plan is None:
                return  # the first chunk is still being computed
            try:
                cmd = self.limiter.limit(plan, self.store.measured(self.action_names))
            except SafetyFaultError as err:
                self.fault(str(err))
                return
            if not self.gate.enabled:  # stopped from another thread since the evaluation
                return
            self._publish(cmd, planned)
            self.limiter.published(cmd)
            self._published(time.monotonic(), planned)

    def _follow(self, status: SafetyStatus) -> None:
        """Track state changes: a run that stops drops its chunks; each change is logged."""
        with self.lock:
            changed = status.state != self.state
            was_running = self.state is NodeState.RUNNING
            self.state, self.reason = status.state, status.reason
        if not changed:
            return
        if was_running:
            self.reset(status.reason)
        text = f'state {status.state.value}' + (f': {status.reason}' if status.reason else '')
        # One call site per severity: rclpy refuses to change a call site's severity.
        if status.state in (NodeState.RUNNING, NodeState.DISABLED):
            self.log.info(text)
        elif status.state is NodeState.FAULT:
            self.log.error(text)
        else:
            self.log.warning(text)
        self._changed()

    def _sample(self) -> None:
        self.store.sample(self.history)
        # Training interpolates joint states onto the grid (the state at t); serving holds the
        # newest sample, this old: the train/serve lag, reported in diagnostics.
        age = self.store.state_age(time.monotonic())
        if np.isfinite(age):
            self.latency['state_age_ms'].add(age)

    def _request(self, tick: int) -> None:
        if self.chunk_executor.should_request(tick) and not self.worker.busy:
            state, images, received = self.history.arrays()
            job = _Job(self._epoch, tick, state, images, received, time.monotonic())
            if self.worker.submit(job):
                self.chunk_executor.requested(tick)

    def _published(self, stamp: float, planned: float) -> None:
        self.cadence.add('publish_late_ms', stamp - planned, planned)
        self.commands_published += 1
        for received in self._unused_chunks:
            self.latency['obs_to_command_ms'].add(stamp - received)
        self._unused_chunks.clear()
        self.publish_stamps.append(stamp)
        self.cadence.publish(stamp)

    # -- inference (worker thread) --------------------------------------------------------
    def warm_up(self) -> float:
        """One inference on blank inputs, so the first real chunk is not slowed by lazy init;
        returns its seconds."""
        state, images = blank_observation(
            int(self.runner.obs_horizon), len(self.profile.state_names), self.runner.image_size,
            {role: cam.depth for role, cam in self.params.cameras.items()}, self.store.channels)
        started = time.monotonic()
        self.model.infer(state, images, self.robot, steps=self.params.sampling_steps or None)
        if hasattr(self.model, 'reset'):
            self.model.reset()
        return time.monotonic() - started

    def _infer(self, job: _Job) -> Any:
        steps = self.params.sampling_steps or None
        return self.model.infer(job.state, job.images, self.robot, steps=steps)

    def _on_chunk(self, job: _Job, chunk: Any) -> None:
        done = time.monotonic()
        actions = np.asarray(chunk, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != len(self.action_names):
            self._on_inference_error(job, PtrError(
                f'policy returned actions of shape {actions.shape}, expected [L, '
                f'{len(self.action_names)}]'))
            return
        with self.lock:
            if job.epoch != self._epoch:
                return  # stopped or went stale while this chunk was computed
            self.chunk_executor.add(actions, job.tick)
            self.chunks_received += 1
            self._unused_chunks.append(job.received)
        self.latency['inference_ms'].add(done - job.submitted)
        self.latency['obs_to_ready_ms'].add(done - job.received)
        self.cadence.add('inference_ms', done - job.submitted, done)

    def _on_inference_error(self, job: _Job, err: BaseException) -> None:
        self.last_error = f'{type(err).__name__}: {err}'
        now = time.monotonic()
        if now - self._error_logged >= 5.0:
            self._error_logged = now
            self.log.error(f'inference failed: {self.last_error}')

    # -- report ---------------------------------------------------------------------------
    def diagnostics(self, interface: str) -> tuple[SafetyStatus, dict[str, str]]:
        """The state and the ``/diagnostics`` key/values: counters, ages, latencies, the
        publish-period jitter (``ptr_ros.cadence``) and the per-minute cadence report."""
        status = self.gate.evaluate(time.monotonic())
        values = diagnostic_values(
            status, robot=self.robot, interface=interface,
            commands_published=self.commands_published, chunks=self.chunks_received,
            rejections=self.store.rejections, received=self.store.received,
            latencies=self.latency, last_error=self.last_error)
        with self.lock:
            stamps = list(self.publish_stamps)
        jit = period_jitter(stamps, 1.0 / self.params.rate_hz)
        gaps = np.diff(stamps) * 1e3 if len(stamps) > 1 else np.array([])
        for q in (50, 99):
            values[f'command_period_ms.p{q}'] = (
                f'{np.percentile(gaps, q):.3f}' if gaps.size else 'n/a')
        values['period_jitter_p99_ms'] = 'n/a' if not jit.periods else f'{jit.p99_ms:.3f}'
        values['max_gap_ms'] = 'n/a' if not jit.periods else f'{jit.max_gap_ms:.3f}'
        values.update(self.cadence.values())
        warning = self._horizon_warning(jit.p99_gap_ms)
        if warning:
            values['horizon_warning'] = warning
        return status, values

    def _horizon_warning(self, p99_gap_ms: float) -> str:
        if self.params.interface != 'trajectory':
            return ''  # a forward controller holds the last command by design
        warning = horizon_warning(self.params.points / self.params.rate_hz, p99_gap_ms)
        now = time.monotonic()
        if warning and now - self._horizon_logged > 10.0:
            self._horizon_logged = now
            self.log.warning(warning)
        return warning

    def _cadence_log(self, checkpoint: str, node: str) -> CadenceLog | None:
        """The ``cadence_log`` file's writer (None: off), told the executed horizon."""
        p = self.params
        if not p.cadence_log:
            return None
        horizon = p.points / p.rate_hz if p.interface == 'trajectory' else None
        return CadenceLog(p.cadence_log, period_s=1.0 / p.rate_hz, window_s=p.cadence_window_s,
                          horizon_s=horizon, checkpoint=checkpoint, node=node,
                          warn=self.log.warning)

    def close(self) -> None:
        """Write the cadence window in progress, stop inference."""
        self.cadence.close()
        self.worker.close()
        if self.model is not self.runner and hasattr(self.model, 'close'):
            self.model.close()


def blank_observation(
    obs_horizon: int, state_dim: int, image_size: tuple[int, int], depth: dict[str, bool],
    channels: dict[str, int],
) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[Any]]]:
    """An all-zero observation history (state, and each camera role's frames at ``image_size``
    with the model's channels) -- the warm-up inference's input."""
    h, w = image_size
    state = np.zeros((obs_horizon, state_dim), np.float32)
    images = {
        role: np.zeros((obs_horizon, h, w, channels.get(role, image_channels(d))),
                       np.uint16 if d else np.uint8)
        for role, d in depth.items()
    }
    return state, images
