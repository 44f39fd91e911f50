"""``policy_node``: serve a ptr checkpoint on an arm, safely.

Observations: each camera role of the checkpoint's robot profile (``sensor_msgs/Image`` or
``CompressedImage``, sensor-data QoS), ``joint_states`` (reordered by joint name) and the
profile's extra-state topics, decoded by ``bag_tools.observation`` -- the code ingestion uses --
and turned into tensors by ``ptr_core.preprocess`` through ``PolicyRunner`` -- the code the
training loader uses.

Control: a timer at ``control_rate_hz`` samples the observation history, asks the inference
worker thread for a new chunk every ``execute_steps`` ticks, blends overlapping chunks
(``ptr_core.inference.ChunkExecutor``, which the simulator evaluation runs too), clamps the
result (``ptr_ros.safety``) and publishes ``trajectory_msgs/JointTrajectory`` or
``std_msgs/Float64MultiArray``. Parameters are read once into ``PolicyNodeParams``
(``ptr_ros.params``).

Safety: starts disabled; ``~/enable`` (``std_srvs/SetBool``) arms it, ``~/stop``
(``std_srvs/Trigger``) disarms it at once. Nothing is published while any observation has not
arrived yet or is older than its timeout; ``/diagnostics`` says why. Every published point is
inside the joint limits and within the step bound of the last published one
(``ptr_ros.safety.CommandLimiter``); a measured state outside the limits latches ``fault`` until
a new ``~/enable``. Messages with the wrong
joint set, a wrong image size or an undecodable payload are rejected, counted and never reach
the model.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from bag_tools.errors import BagToolsError
from bag_tools.observation import (
    extra_state_values,
    image_channels,
    joint_positions,
    stamp_ns,
)
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_core.history import ObservationHistory
from ptr_core.inference import ChunkExecutor
from ptr_ros.conversions import (
    forward_command,
    message_class,
    trajectory_command,
    twist_command,
)
from ptr_ros.params import (
    RunnerParams,
    declare_arm_group_topics,
    declare_extra_action_topics,
    declare_policy_params,
    declare_runner_params,
    served_rate_warnings,
)
from ptr_ros.run import run_node
from ptr_ros.safety import (
    CommandLimiter,
    NodeState,
    RejectedMessageError,
    RejectionCounter,
    SafetyFaultError,
    SafetyGate,
    check_image,
    check_joint_states,
    check_values,
    command_limits,
    diagnostic_values,
    limit_violation,
    load_action_limits,
)
from ptr_ros.worker import InferenceWorker, LatencyWindow

__all__ = ['PolicyNode', 'main']

JOINT_STATES = 'joint_states'


@dataclass(frozen=True)
class _Job:
    epoch: int
    tick: int
    state: npt.NDArray[np.float32]
    images: dict[str, npt.NDArray[Any]]
    received: float  # newest observation's receipt time (monotonic)
    submitted: float


class PolicyNode(Node):
    """Camera + joint-state topics -> policy chunks -> safe, blended commands."""

    def __init__(self, *, runner: Any = None, **kwargs: Any) -> None:
        super().__init__('policy_node', **kwargs)
        self._lock = threading.RLock()
        load = declare_runner_params(self)
        if runner is None:
            runner = _load_runner(load)
        self.runner = runner
        self.robot = _pick_robot(load.robot, list(runner.robots))
        entry = runner.profile(self.robot)
        self.profile = RobotProfile.from_dict(entry['profile'],
                                              source=f'{load.checkpoint}:{self.robot}')
        self._channels: dict[str, int] = dict(entry.get('image_channels', {}))
        self.image_size = runner.image_size  # (H, W): the checkpoint's layout owns it
        self.params = declare_policy_params(self, self.profile,
                                            chunk_length=int(runner.chunk_length))
        self._check_params()
        self.action_names = list(self.profile.action_names)
        self.lower, self.upper = command_limits(
            self.profile, self.action_names, self.params.joint_limit_margin,
            load_action_limits(self.params.action_limits_file))
        self.limiter = CommandLimiter(self.lower, self.upper,
                                      max_step=self.params.max_step_change,
                                      max_accel=self.params.max_step_accel)
        self._setup_state()
        self._warm_up()
        self._setup_io()
        p = self.params
        self.get_logger().info(
            f'serving robot {self.robot!r} from {load.checkpoint or "(runner)"}: '
            f'{len(self.action_names)} actions at {p.rate_hz:g} Hz, K={p.execute_steps}, '
            f'To={self.runner.obs_horizon}, L={self.runner.chunk_length}, '
            f'{p.interface} -> {p.command_topic}; disabled until ~/enable')

    def _check_params(self) -> None:
        """Warn about settings that work but change what the policy was trained for."""
        # One call site: rclpy refuses to change a call site's severity, and both are warnings.
        for line in served_rate_warnings(self.params, self.profile.rate_hz,
                                         int(self.runner.chunk_length)):
            self.get_logger().warning(line)

    # -- state ----------------------------------------------------------------------------
    def _setup_state(self) -> None:
        p = self.params
        timeouts = dict.fromkeys(self._state_sources(), p.state_timeout_s)
        timeouts.update({f'camera/{r}': c.timeout_s for r, c in p.cameras.items()})
        timeouts.update({f'extra/{n}': e.timeout_s for n, e in p.extras.items()})
        self.gate = SafetyGate(timeouts)
        self.rejections = RejectionCounter()
        self.received: Counter[str] = Counter()  # accepted messages by source
        self._last_reject_log: dict[tuple[str, str], float] = {}
        self.last_stamps: dict[str, int | None] = {}  # header stamp (ns) of the newest accepted
        self.chunk_executor = ChunkExecutor(p.execution)
        # A camera's resolution as sent: from source_size, else locked to its first frame.
        self._source_sizes = {r: c.source_size for r, c in p.cameras.items()}
        self.history = ObservationHistory(int(self.runner.obs_horizon))
        self._joints: npt.NDArray[np.float64] | None = None
        self._joint_parts: npt.NDArray[np.float64] | None = None  # merged by joint name
        self._joint_seen = np.full(len(self.profile.joints), -np.inf)  # receipt time per joint
        self._group_joints: list[npt.NDArray[np.float64] | None] = [None] * len(
            self.profile.groups)  # arm-group profiles: each group's newest joints
        self._extra: dict[str, npt.NDArray[np.float64]] = {}
        self._images: dict[str, npt.NDArray[Any]] = {}
        self._received = 0.0
        self._tick = 0
        self._epoch = 0
        self._state = NodeState.DISABLED
        self._reason = ''
        self._unused_chunks: list[float] = []  # receipt times of chunks not yet commanded
        self._last_publish: float | None = None
        self._last_error = ''
        self.inference_latency = LatencyWindow()
        self.ready_latency = LatencyWindow()  # newest observation -> chunk ready
        self.command_latency = LatencyWindow()  # newest observation -> first command from it
        self.periods = LatencyWindow()
        self.state_age = LatencyWindow()  # newest joint state's age when sampled
        self.commands_published = 0
        self.chunks_received = 0
        self.worker: InferenceWorker[_Job, Any] = InferenceWorker(
            self._infer, self._on_chunk, self._on_inference_error)

    def _setup_io(self) -> None:
        sensor = qos_profile_sensor_data
        p = self.params
        if self.profile.multi_arm:
            self._setup_arm_groups(sensor)
        else:
            self.create_subscription(JointState, p.state_topic, self._on_joint_states, sensor)
        for role, cam in p.cameras.items():
            msg_type = CompressedImage if cam.compressed else Image
            self.create_subscription(
                msg_type, cam.topic, lambda m, r=role: self._on_image(r, m), sensor)
        for name, extra in p.extras.items():
            self.create_subscription(
                message_class(extra.type), extra.topic,
                lambda m, n=name: self._on_extra_state(n, m), sensor)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        msg_type = JointTrajectory if p.interface == 'trajectory' else Float64MultiArray
        if self.profile.multi_arm:  # one command per arm group, on its own topic
            self._group_pubs = [self.create_publisher(msg_type, topic, reliable)
                                for topic in self._group_command_topics]
        else:
            self._command_pub = self.create_publisher(msg_type, p.command_topic, reliable)
        self._setup_extra_actions(reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/stop', self._on_stop)
        self.create_timer(1.0 / p.rate_hz, self._on_control_tick)
        self.create_timer(1.0 / p.diagnostics_rate_hz, self._publish_diagnostics)

    # -- observations ---------------------------------------------------------------------
    def _reject(self, source: str, reason: str, detail: str) -> None:
        """Count a refused message under a fixed ``reason`` (a bounded set of diagnostics
        keys) and log the ``detail`` (throttled)."""
        n = self.rejections.add(source, reason)
        now = time.monotonic()
        if now - self._last_reject_log.get((source, reason), -np.inf) >= 2.0:  # per kind
            self._last_reject_log[(source, reason)] = now
            self.get_logger().warning(
                f'rejected {source} message: {reason}: {detail} ({n} so far)')

    def _on_joint_states(self, msg: JointState) -> None:
        # Arm and gripper drivers may publish separate messages on one topic: joints are merged
        # by name, as ingest does. The state is complete once every joint was named, and as old
        # as its oldest joint (a silent gripper driver trips the watchdog).
        joints_ = self.profile.joints
        try:
            joints, named = check_joint_states(msg, joints_)
        except RejectedMessageError as err:
            self._reject(JOINT_STATES, err.reason, err.detail)
            return
        now = time.monotonic()
        with self._lock:
            if self._joint_parts is None:
                self._joint_parts = np.full(len(joints_), np.nan)
                self._joint_seen = np.full(len(joints_), -np.inf)
            self._joint_parts[named] = joints[named]
            self._joint_seen[named] = now
            complete = bool(np.isfinite(self._joint_seen).all())
            if complete:
                self._joints = self._joint_parts.copy()
            self._received = max(self._received, now)
            self.received[JOINT_STATES] += 1
            self.last_stamps[JOINT_STATES] = stamp_ns(msg)
            oldest = float(self._joint_seen.min())
        if complete:
            self.gate.mark(JOINT_STATES, oldest)

    # -- arm groups (profiles with ``arms:``) ------------------------------------------------
    def _state_sources(self) -> list[str]:
        """Watchdog sources of the joint states: one per arm group of an arm-group profile."""
        if not self.profile.multi_arm:
            return [JOINT_STATES]
        return [f'{JOINT_STATES}/{g.name}' for g in self.profile.groups]

    def _setup_arm_groups(self, qos: Any) -> None:
        """Per group: ``arms.<group>.state_topic`` in (JointState, the group's joint names) and
        ``arms.<group>.command_topic`` out (the group's actions under its own joint names)."""
        states, self._group_command_topics = declare_arm_group_topics(
            self, self.profile, self.params.interface)
        for k, topic in enumerate(states):
            self.create_subscription(JointState, topic,
                                     lambda m, k=k: self._on_group_state(k, m), qos)

    def _on_group_state(self, k: int, msg: JointState) -> None:
        g = self.profile.groups[k]
        source = f'{JOINT_STATES}/{g.name}'
        try:
            joints = joint_positions(msg, g.joints)
        except BagToolsError as err:
            self._reject(source, 'wrong joint set', str(err))
            return
        try:
            check_values(joints, 'positions')
        except RejectedMessageError as err:
            self._reject(source, err.reason, err.detail)
            return
        now = time.monotonic()
        with self._lock:
            self._group_joints[k] = joints
            if all(j is not None for j in self._group_joints):
                self._joints = np.concatenate(self._group_joints)  # type: ignore[arg-type]
            self._received = max(self._received, now)
            self.received[source] += 1
            self.last_stamps[source] = stamp_ns(msg)
        self.gate.mark(source, now)

    def _publish_groups(self, cmd: npt.NDArray[np.float64]) -> None:
        """Each group's slice of the command, named by the group's own joints."""
        start = 0
        for g, pub in zip(self.profile.groups, self._group_pubs):
            names = list(g.action.names)
            part = cmd[:, start:start + len(names)]
            start += len(names)
            if self.params.interface == 'trajectory':
                pub.publish(trajectory_command(names, part, 1.0 / self.params.rate_hz))
            else:
                pub.publish(forward_command(names, part[0]))

    def _on_extra_state(self, name: str, msg: Any) -> None:
        try:
            extra = self.params.extras[name]
            values = extra_state_values(msg, extra.type, joints=extra.joints)
        except BagToolsError as err:
            self._reject(f'extra/{name}', 'undecodable', str(err))
            return
        try:
            check_values(values, 'values')
        except RejectedMessageError as err:
            self._reject(f'extra/{name}', err.reason, err.detail)
            return
        now = time.monotonic()
        with self._lock:
            self._extra[name] = values
            self.received[f'extra/{name}'] += 1
            self.last_stamps[f'extra/{name}'] = stamp_ns(msg)
        self.gate.mark(f'extra/{name}', now)

    def _on_image(self, role: str, msg: Any) -> None:
        source = f'camera/{role}'
        expected = self._source_sizes[role]
        try:
            frame, dims = check_image(
                msg, role=role, expected=expected, size=self.image_size,
                depth=self.params.cameras[role].depth, channels=self._channels.get(role))
        except RejectedMessageError as err:
            self._reject(source, err.reason, err.detail)
            return
        if expected is None and dims is not None:
            self._source_sizes[role] = dims  # the camera's resolution is fixed from here on
        now = time.monotonic()
        with self._lock:
            self._images[role] = frame
            self._received = max(self._received, now)
            self.received[source] += 1
            self.last_stamps[source] = stamp_ns(msg)
        self.gate.mark(source, now)

    def state_vector(self) -> npt.NDArray[np.float64]:
        """Joint positions in profile order, then the extra-state values (the dataset's
        ``state`` row)."""
        with self._lock:
            if self._joints is None or len(self._extra) < len(self.profile.extra_state):
                msg = 'no joint state (or extra state) received yet'
                raise PtrError(msg)
            parts = [self._joints] + [self._extra[e.name] for e in self.profile.extra_state]
            return np.concatenate(parts)

    def latest_images(self) -> dict[str, npt.NDArray[Any]]:
        with self._lock:
            return dict(self._images)

    def sample_observation(self) -> None:
        """Append the newest observation to the history (once per control tick)."""
        with self._lock:
            self.history.push(self.state_vector(), self._images, self._received)
            # Training interpolates joint states onto the grid (the state at t); serving holds
            # the newest sample, this old: the train/serve lag, reported in diagnostics.
            age = time.monotonic() - float(self._joint_seen.min())
            if np.isfinite(age):
                self.state_age.add(age)

    # -- services -------------------------------------------------------------------------
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> Any:
        if request.data:
            if not self.gate.enabled and hasattr(self.runner, 'reset') and not self.worker.busy:
                self.runner.reset()  # a new episode: the sampling noise restarts from its seed
            with self._lock:
                if self.gate.faulted:  # the operator's decision: start over from the arm
                    self.limiter.forget()
                self.gate.enable()
            why = self._check_state()
            status = self.gate.evaluate(time.monotonic())
            response.message = f'enabled; {status.state.value}' + (
                f': {status.reason}' if status.reason else '')
            if why:
                response.message = f'refused: {status.reason}'
                response.success = False
                self._publish_diagnostics()
                return response
            self.get_logger().info(response.message)
        else:
            self._disable('disabled by ~/enable false')
            response.message = 'disabled'
        response.success = True
        self._publish_diagnostics()
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        self._disable('stopped by ~/stop')
        response.success = True
        response.message = 'stopped; call ~/enable to resume'
        self._publish_diagnostics()
        return response

    def _disable(self, why: str) -> None:
        self.gate.stop()
        self._reset(why)
        self.get_logger().warning(why)

    def _fault(self, why: str) -> None:
        """Latch the fault state: nothing is published until a new ``~/enable``."""
        self.gate.fault(why)
        self._reset(why)
        self.get_logger().error(f'fault: {why}')
        self._publish_diagnostics()

    def _check_state(self) -> str:
        """Fault (and say why) when the measured joints are implausible: outside the limits
        by more than joint_limit_tolerance."""
        with self._lock:
            joints = self._joints
        if joints is None or not self.gate.enabled:
            return ''
        p = self.profile
        why = limit_violation(p.joints, joints, lower=p.joint_lower, upper=p.joint_upper,
                              tolerance=self.params.joint_limit_tolerance)
        if why:
            self._fault(why)
        return why

    def _reset(self, why: str) -> None:
        """Drop every chunk and the history; results still in flight are discarded."""
        with self._lock:
            self._epoch += 1
            self.chunk_executor.reset()
            self.history.clear()
            self.limiter.hold()  # the next command ramps in from the measured position
            self._unused_chunks.clear()
            self._last_publish = None
            self._state, self._reason = self.gate.evaluate(time.monotonic()).state, why

    # -- control loop ---------------------------------------------------------------------
    def _on_control_tick(self) -> None:
        self._check_state()
        now = time.monotonic()
        status = self.gate.evaluate(now)
        with self._lock:
            changed = status.state != self._state
            was_running = self._state is NodeState.RUNNING
            self._state, self._reason = status.state, status.reason
        if changed:
            if was_running:
                self._reset(status.reason)
            text = f'state {status.state.value}' + (f': {status.reason}' if status.reason else '')
            # One call site per severity: rclpy refuses to change a call site's severity.
            if status.state in (NodeState.RUNNING, NodeState.DISABLED):
                self.get_logger().info(text)
            elif status.state is NodeState.FAULT:
                self.get_logger().error(text)
            else:
                self.get_logger().warning(text)
            self._publish_diagnostics()
        if status.state is not NodeState.RUNNING:
            return
        with self._lock:
            self._tick += 1
            tick = self._tick
            self.sample_observation()
            if self.chunk_executor.should_request(tick) and not self.worker.busy:
                state, images, received = self.history.arrays()
                job = _Job(self._epoch, tick, state, images, received, time.monotonic())
                if self.worker.submit(job):
                    self.chunk_executor.requested(tick)
            plan = self.chunk_executor.plan(tick, self.params.points)
            if plan is None:
                return  # the first chunk is still being computed
            try:
                cmd = self.limiter.limit(plan, self._measured())
            except SafetyFaultError as err:
                self._fault(str(err))
                return
            if not self.gate.enabled:  # ~/stop from another thread since the evaluation
                return
            self._publish_command(cmd)
            self.limiter.published(cmd)
            stamp = time.monotonic()
            for received in self._unused_chunks:
                self.command_latency.add(stamp - received)
            self._unused_chunks.clear()
            if self._last_publish is not None:
                self.periods.add(stamp - self._last_publish)
            self._last_publish = stamp

    def _measured(self) -> npt.NDArray[np.float64]:
        """Measured positions in action order (NaN for actions that are not joints)."""
        joints = dict(zip(self.profile.joints, self._joints if self._joints is not None else []))
        return np.array([joints.get(n, np.nan) for n in self.action_names], dtype=np.float64)

    def _publish_command(self, cmd: npt.NDArray[np.float64]) -> None:
        n = self._arm_actions  # the arms' actions; extra_action dims (cmd_vel) follow
        names = self.action_names[:n]
        if self.profile.multi_arm:
            self._publish_groups(cmd)
        elif self.params.interface == 'trajectory':
            self._command_pub.publish(
                trajectory_command(names, cmd[:, :n], 1.0 / self.params.rate_hz))
        else:
            self._command_pub.publish(forward_command(names, cmd[0, :n]))
        self._publish_extra_actions(cmd[0, n:])
        self.commands_published += 1

    # -- extra actions (a base's cmd_vel) -------------------------------------------------
    def _setup_extra_actions(self, qos: Any) -> None:
        """``extra_action.<name>.topic``: each extra action (Twist[Stamped]) on its topic."""
        topics = declare_extra_action_topics(self, self.profile)
        self._extra_action_pubs = [
            (e, message_class(e.type), self.create_publisher(message_class(e.type), topic, qos))
            for e, topic in zip(self.profile.extra_action, topics)]
        self._arm_actions = len(self.action_names) - sum(
            len(e.dim_names) for e in self.profile.extra_action)

    def _publish_extra_actions(self, values: npt.NDArray[np.float64]) -> None:
        start = 0
        for e, cls, pub in self._extra_action_pubs:
            v = values[start:start + len(e.dim_names)]
            start += len(e.dim_names)
            pub.publish(twist_command(cls, v, self.get_clock().now().to_msg()))

    # -- inference (worker thread) --------------------------------------------------------
    def _warm_up(self) -> None:
        """One inference on blank inputs, so the first real chunk is not slowed by lazy init."""
        state, images = blank_observation(
            int(self.runner.obs_horizon), len(self.profile.state_names), self.image_size,
            {role: cam.depth for role, cam in self.params.cameras.items()}, self._channels)
        started = time.monotonic()
        self.runner.infer(state, images, self.robot, steps=self.params.sampling_steps or None)
        if hasattr(self.runner, 'reset'):
            self.runner.reset()
        self.get_logger().info(f'warm-up inference took {time.monotonic() - started:.3f} s')

    def _infer(self, job: _Job) -> Any:
        steps = self.params.sampling_steps or None
        return self.runner.infer(job.state, job.images, self.robot, steps=steps)

    def _on_chunk(self, job: _Job, chunk: Any) -> None:
        done = time.monotonic()
        actions = np.asarray(chunk, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != len(self.action_names):
            self._on_inference_error(job, PtrError(
                f'policy returned actions of shape {actions.shape}, expected [L, '
                f'{len(self.action_names)}]'))
            return
        with self._lock:
            if job.epoch != self._epoch:
                return  # stopped or went stale while this chunk was computed
            self.chunk_executor.add(actions, job.tick)
            self.chunks_received += 1
            self._unused_chunks.append(job.received)
        self.inference_latency.add(done - job.submitted)
        self.ready_latency.add(done - job.received)

    def _on_inference_error(self, job: _Job, err: BaseException) -> None:
        self._last_error = f'{type(err).__name__}: {err}'
        self.get_logger().error(f'inference failed: {self._last_error}',
                                throttle_duration_sec=5.0)

    # -- diagnostics ----------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        status = self.gate.evaluate(now)
        level = {NodeState.DISABLED: DiagnosticStatus.OK, NodeState.RUNNING: DiagnosticStatus.OK,
                 NodeState.WAITING: DiagnosticStatus.WARN,
                 NodeState.STALE: DiagnosticStatus.ERROR,
                 NodeState.FAULT: DiagnosticStatus.ERROR}[status.state]
        values = diagnostic_values(
            status, robot=self.robot, interface=self.params.interface,
            commands_published=self.commands_published, chunks=self.chunks_received,
            rejections=self.rejections, received=self.received,
            latencies={'inference_ms': self.inference_latency,
                       'obs_to_ready_ms': self.ready_latency,
                       'obs_to_command_ms': self.command_latency,
                       'command_period_ms': self.periods,
                       'state_age_ms': self.state_age},
            last_error=self._last_error)
        diag = DiagnosticStatus(level=level, name=f'{self.get_name()}: policy',
                                hardware_id=self.robot,
                                message=status.state.value + (
                                    f': {status.reason}' if status.reason else ''))
        diag.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        worker = getattr(self, 'worker', None)  # absent when __init__ failed
        if worker is not None:
            worker.close()
        super().destroy_node()


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


def _load_runner(load: RunnerParams) -> Any:
    if not load.checkpoint:
        msg = 'parameter checkpoint is empty; pass --ros-args -p checkpoint:=DIR'
        raise PtrError(msg)
    import torch

    from ptr_core.inference import PolicyRunner

    if load.torch_threads > 0:
        torch.set_num_threads(load.torch_threads)
    return PolicyRunner.from_checkpoint(load.checkpoint, device=load.device)


def _pick_robot(robot: str, robots: list[str]) -> str:
    if not robot:
        if len(robots) != 1:
            msg = f'checkpoint has robots {robots}; set the robot parameter'
            raise PtrError(msg)
        robot = robots[0]
    if robot not in robots:
        msg = f'checkpoint has no robot {robot!r} (has {robots})'
        raise PtrError(msg)
    return robot


def main(args: list[str] | None = None) -> None:
    run_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    main()
