"""``policy_node``: serve a ptr checkpoint on an arm, safely.

Observations: each camera role of the checkpoint's robot profile (``sensor_msgs/Image`` or
``CompressedImage``, sensor-data QoS), ``joint_states`` (reordered by joint name) and the
profile's extra-state topics, decoded by ``bag_tools.observation`` -- the code ingestion uses --
and turned into tensors by ``ptr_core.preprocess`` through ``PolicyRunner`` -- the code the
training loader uses.

Control: a timer at ``control_rate_hz`` samples the observation history, asks the inference
worker thread for a new chunk every ``execute_steps`` ticks, blends overlapping chunks
(``ptr_ros.chunking``), clamps the result (``ptr_ros.safety``) and publishes
``trajectory_msgs/JointTrajectory`` or ``std_msgs/Float64MultiArray``.

Safety: starts disabled; ``~/enable`` (``std_srvs/SetBool``) arms it, ``~/stop``
(``std_srvs/Trigger``) disarms it at once. Nothing is published while any observation has not
arrived yet or is older than its timeout; ``/diagnostics`` says why. Messages with the wrong
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
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from bag_tools.errors import BagToolsError
from bag_tools.observation import decode_image, extra_state_values, joint_positions, stamp_ns
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_ros.chunking import ChunkEnsembler
from ptr_ros.conversions import forward_command, image_dims, message_class, trajectory_command
from ptr_ros.history import ObservationHistory
from ptr_ros.params import declare
from ptr_ros.safety import NodeState, RejectionCounter, SafetyGate, clamp_trajectory
from ptr_ros.worker import InferenceWorker, LatencyWindow

__all__ = ['PolicyNode', 'main']

INTERFACES = ('trajectory', 'forward')
TRANSPORTS = ('auto', 'raw', 'compressed')
DEFAULT_COMMAND_TOPICS = {
    'trajectory': '/joint_trajectory_controller/joint_trajectory',
    'forward': '/forward_position_controller/commands',
}
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
        checkpoint = declare(self, 'checkpoint', '', 'Checkpoint directory (safetensors + JSON).')
        device = declare(self, 'device', 'cpu', 'Torch device for inference: cpu, cuda, cuda:N.')
        threads = declare(self, 'torch_threads', 0, 'Torch CPU threads for inference (0: '
                          'torch default).', lo=0, hi=256)
        if runner is None:
            runner = self._load_runner(checkpoint, device, threads)
        self.runner = runner
        robots = list(runner.robots)
        robot = declare(self, 'robot', '', 'Robot (embodiment) to serve; empty: the '
                        "checkpoint's only robot.")
        if not robot:
            if len(robots) != 1:
                msg = f'checkpoint has robots {robots}; set the robot parameter'
                raise PtrError(msg)
            robot = robots[0]
        if robot not in robots:
            msg = f'checkpoint has no robot {robot!r} (has {robots})'
            raise PtrError(msg)
        self.robot = robot
        entry = runner.profile(robot)
        self.profile = RobotProfile.from_dict(entry['profile'], source=f'{checkpoint}:{robot}')
        self._channels: dict[str, int] = dict(entry.get('image_channels', {}))
        self._declare_control()
        self._declare_observations()
        self._setup_state()
        self._warm_up()
        self._setup_io()
        self.get_logger().info(
            f'serving robot {robot!r} from {checkpoint or "(runner)"}: '
            f'{len(self.action_names)} actions at {self.rate_hz:g} Hz, K={self.execute_steps}, '
            f'To={self.runner.obs_horizon}, L={self.runner.chunk_length}, '
            f'{self.interface} -> {self.command_topic}; disabled until ~/enable')

    @staticmethod
    def _load_runner(checkpoint: str, device: str, threads: int) -> Any:
        if not checkpoint:
            msg = 'parameter checkpoint is empty; pass --ros-args -p checkpoint:=DIR'
            raise PtrError(msg)
        import torch

        from ptr_core.inference import PolicyRunner

        if threads > 0:
            torch.set_num_threads(threads)
        return PolicyRunner.from_checkpoint(checkpoint, device=device)

    # -- parameters -----------------------------------------------------------------------
    def _declare_control(self) -> None:
        p = self.profile
        rate = declare(self, 'control_rate_hz', 0.0, "Command rate (Hz); 0: the profile's "
                       f'rate ({p.rate_hz:g} Hz), the rate the policy was trained at.',
                       lo=0.0, hi=1000.0)
        self.rate_hz = float(rate) or p.rate_hz
        if abs(self.rate_hz - p.rate_hz) > 1e-6:
            self.get_logger().warning(
                f'control_rate_hz {self.rate_hz:g} differs from the training rate '
                f'{p.rate_hz:g} Hz: the observation history and chunk timing are rescaled')
        length = int(self.runner.chunk_length)
        self.execute_steps = declare(
            self, 'execute_steps', max(1, length // 2), 'K: chunk actions executed before the '
            'next chunk is requested; keep K + inference latency (in steps) below the chunk '
            'length L so chunks overlap. Default L / 2.', lo=1, hi=1000)
        if self.execute_steps >= length:
            self.get_logger().warning(
                f'execute_steps {self.execute_steps} >= chunk length {length}: chunks cannot '
                'overlap, so motion pauses while the next chunk is computed')
        self.sampling_steps = declare(self, 'sampling_steps', 0, 'Denoising/integration steps '
                                      "per chunk; 0: the checkpoint's default.", lo=0, hi=1000)
        self.ensemble = declare(self, 'temporal_ensembling', True, 'Blend overlapping chunks '
                                '(weights exp(-decay * j), j = 0 the oldest chunk).')
        self.decay = declare(self, 'ensemble_decay', 0.01, 'Temporal-ensembling decay; 0 '
                             'averages the chunks equally.', lo=0.0, hi=10.0)
        self.interface = declare(self, 'command_interface', 'trajectory', 'Output message: '
                                 'trajectory (JointTrajectory for joint_trajectory_controller) '
                                 'or forward (Float64MultiArray for forward_position_controller).',
                                 choices=INTERFACES)
        topic = declare(self, 'command_topic', '', 'Command topic; empty: '
                        '/joint_trajectory_controller/joint_trajectory or '
                        '/forward_position_controller/commands by command_interface.')
        self.command_topic = topic or DEFAULT_COMMAND_TOPICS[self.interface]
        self.trajectory_points = declare(self, 'trajectory_points', 0, 'Points per '
                                         'JointTrajectory; 0: execute_steps.', lo=0, hi=1000)
        self.max_step = declare(self, 'max_step_change', 0.05, 'Largest change of a command '
                                'between control steps (rad or m per step).', lo=0.0, hi=10.0)
        margin = declare(self, 'joint_limit_margin', 0.0, 'Commands stay this far inside the '
                         "profile's joint limits (rad or m).", lo=0.0, hi=10.0)
        self.diag_rate = declare(self, 'diagnostics_rate_hz', 2.0, '/diagnostics rate (Hz).',
                                 lo=0.1, hi=100.0)
        self.action_names = list(p.action_names)
        limits = dict(zip(p.joints, zip(p.joint_lower, p.joint_upper)))
        self.lower = np.array([limits.get(n, (-np.inf, np.inf))[0] for n in self.action_names])
        self.upper = np.array([limits.get(n, (-np.inf, np.inf))[1] for n in self.action_names])
        # Actions that are not joints (e.g. end-effector deltas) are unlimited: ±inf, whose
        # midpoint would be NaN and turn every clamped command into NaN.
        finite = np.isfinite(self.lower) & np.isfinite(self.upper)
        mid = np.where(finite, (np.where(finite, self.lower, 0) + np.where(finite, self.upper,
                                                                           0)) / 2, 0.0)
        self.lower = np.where(finite, np.minimum(self.lower + margin, mid), self.lower)
        self.upper = np.where(finite, np.maximum(self.upper - margin, mid), self.upper)

    def _declare_observations(self) -> None:
        p = self.profile
        self.state_topic = declare(self, 'joint_states_topic', p.state_topic,
                                   'sensor_msgs/JointState input.')
        self.state_timeout = declare(self, 'joint_states_timeout_s', 0.25, 'Hold when the '
                                     'newest joint state is older than this (s).',
                                     lo=0.001, hi=60.0)
        default_transport = declare(self, 'image_transport', 'auto', 'Camera message type: '
                                    'auto (CompressedImage when the topic ends in /compressed), '
                                    'raw or compressed.', choices=TRANSPORTS)
        camera_timeout = declare(self, 'camera_timeout_s', 0.5, 'Hold when a camera frame is '
                                 'older than this (s); per camera: cameras.<role>.timeout_s.',
                                 lo=0.001, hi=60.0)
        self.cameras: dict[str, dict[str, Any]] = {}
        for cam in p.cameras:
            key = f'cameras.{cam.role}'
            topic = declare(self, f'{key}.topic', cam.topic, f'Camera {cam.role!r} input.')
            transport = declare(self, f'{key}.transport', default_transport, f'Camera '
                                f'{cam.role!r} message type.', choices=TRANSPORTS)
            timeout = declare(self, f'{key}.timeout_s', float(camera_timeout),
                              f'Camera {cam.role!r} watchdog timeout (s).', lo=0.001, hi=60.0)
            size = declare(self, f'{key}.source_size', [0, 0], f'Camera {cam.role!r} image '
                           '[height, width] as sent; [0, 0]: locked to the first frame. Frames '
                           'of another size are rejected.')
            compressed = transport == 'compressed' or (
                transport == 'auto' and topic.endswith('/compressed'))
            self.cameras[cam.role] = {
                'topic': topic, 'compressed': compressed, 'timeout': timeout,
                'depth': cam.depth, 'source_size': tuple(size) if any(size) else None,
            }
        self.extras: dict[str, dict[str, Any]] = {}
        for extra in p.extra_state:
            key = f'extra_state.{extra.name}'
            topic = declare(self, f'{key}.topic', extra.topic, f'{extra.type} input.')
            timeout = declare(self, f'{key}.timeout_s', 0.5, f'{extra.name} watchdog timeout '
                              '(s).', lo=0.001, hi=60.0)
            self.extras[extra.name] = {'topic': topic, 'type': extra.type, 'timeout': timeout,
                                       'joints': tuple(extra.joints)}

    # -- state ----------------------------------------------------------------------------
    def _setup_state(self) -> None:
        timeouts = {JOINT_STATES: float(self.state_timeout)}
        timeouts.update({f'camera/{r}': float(c['timeout']) for r, c in self.cameras.items()})
        timeouts.update({f'extra/{n}': float(e['timeout']) for n, e in self.extras.items()})
        self.gate = SafetyGate(timeouts)
        self.rejections = RejectionCounter()
        self.received: Counter[str] = Counter()  # accepted messages by source
        self._last_reject_log: dict[tuple[str, str], float] = {}
        self.last_stamps: dict[str, int | None] = {}  # header stamp (ns) of the newest accepted
        self.ensembler = ChunkEnsembler(execute_steps=self.execute_steps,
                                        ensemble=self.ensemble, decay=self.decay)
        self.history = ObservationHistory(int(self.runner.obs_horizon))
        self._joints: npt.NDArray[np.float64] | None = None
        self._extra: dict[str, npt.NDArray[np.float64]] = {}
        self._images: dict[str, npt.NDArray[Any]] = {}
        self._received = 0.0
        self._tick = 0
        self._epoch = 0
        self._last_command: npt.NDArray[np.float64] | None = None
        self._state = NodeState.DISABLED
        self._reason = ''
        self._unused_chunks: list[float] = []  # receipt times of chunks not yet commanded
        self._last_publish: float | None = None
        self._last_error = ''
        self.inference_latency = LatencyWindow()
        self.ready_latency = LatencyWindow()  # newest observation -> chunk ready
        self.command_latency = LatencyWindow()  # newest observation -> first command from it
        self.periods = LatencyWindow()
        self.commands_published = 0
        self.chunks_received = 0
        self.worker: InferenceWorker[_Job, Any] = InferenceWorker(
            self._infer, self._on_chunk, self._on_inference_error)

    def _setup_io(self) -> None:
        sensor = qos_profile_sensor_data
        self.create_subscription(JointState, self.state_topic, self._on_joint_states, sensor)
        for role, cam in self.cameras.items():
            msg_type = CompressedImage if cam['compressed'] else Image
            self.create_subscription(
                msg_type, cam['topic'], lambda m, r=role: self._on_image(r, m), sensor)
        for name, extra in self.extras.items():
            self.create_subscription(
                message_class(extra['type']), extra['topic'],
                lambda m, n=name: self._on_extra_state(n, m), sensor)
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        msg_type = JointTrajectory if self.interface == 'trajectory' else Float64MultiArray
        self._command_pub = self.create_publisher(msg_type, self.command_topic, reliable)
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/stop', self._on_stop)
        self.create_timer(1.0 / self.rate_hz, self._on_control_tick)
        self.create_timer(1.0 / self.diag_rate, self._publish_diagnostics)

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
        try:
            joints = joint_positions(msg, self.profile.joints)
        except BagToolsError as err:
            self._reject(JOINT_STATES, 'wrong joint set', str(err))
            return
        if not np.all(np.isfinite(joints)):
            self._reject(JOINT_STATES, 'non-finite value', f'positions {joints.tolist()}')
            return
        now = time.monotonic()
        with self._lock:
            self._joints = joints
            self._received = max(self._received, now)
            self.received[JOINT_STATES] += 1
            self.last_stamps[JOINT_STATES] = stamp_ns(msg)
        self.gate.mark(JOINT_STATES, now)

    def _on_extra_state(self, name: str, msg: Any) -> None:
        try:
            extra = self.extras[name]
            values = extra_state_values(msg, extra['type'], joints=extra['joints'])
        except BagToolsError as err:
            self._reject(f'extra/{name}', 'undecodable', str(err))
            return
        if not np.all(np.isfinite(values)):
            self._reject(f'extra/{name}', 'non-finite value', f'values {values.tolist()}')
            return
        now = time.monotonic()
        with self._lock:
            self._extra[name] = values
            self.received[f'extra/{name}'] += 1
            self.last_stamps[f'extra/{name}'] = stamp_ns(msg)
        self.gate.mark(f'extra/{name}', now)

    def _on_image(self, role: str, msg: Any) -> None:
        cam = self.cameras[role]
        source = f'camera/{role}'
        dims = image_dims(msg)
        if dims is not None and cam['source_size'] is not None and dims != cam['source_size']:
            expected = cam['source_size']
            self._reject(source, 'wrong image size', f'{dims[0]}x{dims[1]}, expected '
                         f'{expected[0]}x{expected[1]} (cameras.{role}.source_size)')
            return
        try:
            frame = decode_image(msg, size=self.profile.image_size, depth=cam['depth'])
        except BagToolsError as err:
            self._reject(source, 'undecodable', str(err))
            return
        channels = self._channels.get(role, frame.shape[2])
        if frame.shape != (*self.profile.image_size, channels):
            self._reject(source, 'wrong channels', f'decoded shape {frame.shape}, the model '
                         f'needs {(*self.profile.image_size, channels)}')
            return
        if cam['source_size'] is None and dims is not None:
            cam['source_size'] = dims  # the camera's resolution is fixed from here on
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

    # -- services -------------------------------------------------------------------------
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> Any:
        if request.data:
            if not self.gate.enabled and hasattr(self.runner, 'reset') and not self.worker.busy:
                self.runner.reset()  # a new episode: the sampling noise restarts from its seed
            self.gate.enable()
            status = self.gate.evaluate(time.monotonic())
            response.message = f'enabled; {status.state.value}' + (
                f': {status.reason}' if status.reason else '')
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

    def _reset(self, why: str) -> None:
        """Drop every chunk and the history; results still in flight are discarded."""
        with self._lock:
            self._epoch += 1
            self.ensembler.reset()
            self.history.clear()
            self._last_command = None
            self._unused_chunks.clear()
            self._last_publish = None
            self._state, self._reason = self.gate.evaluate(time.monotonic()).state, why

    # -- control loop ---------------------------------------------------------------------
    def _on_control_tick(self) -> None:
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
            else:
                self.get_logger().warning(text)
            self._publish_diagnostics()
        if status.state is not NodeState.RUNNING:
            return
        with self._lock:
            self._tick += 1
            tick = self._tick
            self.sample_observation()
            if self.ensembler.should_request(tick) and not self.worker.busy:
                state, images, received = self.history.arrays()
                job = _Job(self._epoch, tick, state, images, received, time.monotonic())
                if self.worker.submit(job):
                    self.ensembler.requested(tick)
            horizon = self.trajectory_points or self.execute_steps
            plan = self.ensembler.plan(tick, horizon if self.interface == 'trajectory' else 1)
            if plan is None:
                return  # the first chunk is still being computed
            previous = self._last_command if self._last_command is not None else self._measured()
            cmd = clamp_trajectory(plan, np.where(np.isnan(previous), plan[0], previous),
                                   lower=self.lower, upper=self.upper, max_step=self.max_step)
            if not self.gate.enabled:  # ~/stop from another thread since the evaluation
                return
            self._publish_command(cmd)
            self._last_command = cmd[0]
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
        if self.interface == 'trajectory':
            self._command_pub.publish(
                trajectory_command(self.action_names, cmd, 1.0 / self.rate_hz))
        else:
            self._command_pub.publish(forward_command(self.action_names, cmd[0]))
        self.commands_published += 1

    # -- inference (worker thread) --------------------------------------------------------
    def _warm_up(self) -> None:
        """One inference on blank inputs, so the first real chunk is not slowed by lazy init."""
        to, (h, w) = int(self.runner.obs_horizon), self.profile.image_size
        state = np.zeros((to, len(self.profile.state_names)), np.float32)
        images = {
            role: np.zeros((to, h, w, self._channels.get(role, 1 if cam['depth'] else 3)),
                           np.uint16 if cam['depth'] else np.uint8)
            for role, cam in self.cameras.items()
        }
        started = time.monotonic()
        self.runner.infer(state, images, self.robot, steps=self.sampling_steps or None)
        if hasattr(self.runner, 'reset'):
            self.runner.reset()
        self.get_logger().info(f'warm-up inference took {time.monotonic() - started:.3f} s')

    def _infer(self, job: _Job) -> Any:
        steps = self.sampling_steps or None
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
            self.ensembler.add(actions, job.tick)
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
                 NodeState.STALE: DiagnosticStatus.ERROR}[status.state]
        values = {'state': status.state.value, 'reason': status.reason,
                  'robot': self.robot, 'command_interface': self.interface,
                  'commands_published': str(self.commands_published),
                  'chunks': str(self.chunks_received),
                  'rejected_total': str(self.rejections.total)}
        for name, age in status.ages.items():
            values[f'age.{name}'] = 'never' if age is None else f'{age:.4f}'
        for label, window in (('inference_ms', self.inference_latency),
                              ('obs_to_ready_ms', self.ready_latency),
                              ('obs_to_command_ms', self.command_latency),
                              ('command_period_ms', self.periods)):
            for q in (50, 99):
                got = window.percentile_ms(q)
                values[f'{label}.p{q}'] = 'n/a' if got is None else f'{got:.3f}'
        for source, count in sorted(self.received.items()):
            values[f'received.{source}'] = str(count)
        for source, count in self.rejections.by_source().items():
            values[f'rejected.{source}'] = str(count)
        for source, reason, count in self.rejections.items():
            values[f'rejected.{source}: {reason}'] = str(count)
        if self._last_error:
            values['last_inference_error'] = self._last_error
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


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    node = None
    try:
        node = PolicyNode()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (PtrError, BagToolsError) as err:
        # A configuration error: one line, not a traceback.
        get_logger('policy_node').fatal(str(err))
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
