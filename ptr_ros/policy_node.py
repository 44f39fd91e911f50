"""``policy_node``: serve a ptr checkpoint on an arm, safely, as a managed (lifecycle) node.

Lifecycle (``lifecycle_msgs`` services ``~/change_state``, ``~/get_state``):
- configure: load and check the checkpoint (robot, command limits -- a dimension without one is
  refused), declare the parameters it fills in, make the publishers, warm up inference;
- activate: subscriptions live and the control tick running; commands still wait for
  ``~/enable`` (``std_srvs/SetBool``); ``~/stop`` (``std_srvs/Trigger``) disarms at once;
- deactivate: hold (disarmed, subscriptions gone, nothing published);
- cleanup / shutdown: free the model, the threads and every publisher and subscription;
- an error in any transition or in the control tick: disarmed, nothing published.
With ``autostart`` (default true) the node configures and activates itself; ``policy.launch.py
autostart:=false`` leaves the transitions to a lifecycle manager.

The work is done by rclpy-free pieces: ``ptr_ros.control`` (the control tick, safety, chunk
blending, inference thread, statistics), ``ptr_ros.observations`` (joint merging, decoding,
watchdog marks), ``ptr_ros.clock`` (the tick's own thread), ``ptr_ros.output`` (the command
messages), ``ptr_ros.params`` (the parameters) and ``ptr_ros.cadence`` (the timing report).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_srvs.srv import SetBool, Trigger

from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_ros.clock import ControlClock, set_fifo
from ptr_ros.control import ControlLoop
from ptr_ros.conversions import message_class
from ptr_ros.inference_process import ProcessRunner
from ptr_ros.output import CommandOutput
from ptr_ros.params import (
    declare,
    declare_arm_group_topics,
    declare_extra_action_topics,
    declare_policy_params,
    declare_runner_params,
)
from ptr_ros.run import run_node
from ptr_ros.safety import NodeState, command_limits, load_action_limits
from ptr_ros.settings import RunnerParams, served_rate_warnings

__all__ = ['PolicyNode', 'main']

OK, FAILURE, ERROR = (TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE,
                      TransitionCallbackReturn.ERROR)
LEVELS = {NodeState.DISABLED: DiagnosticStatus.OK, NodeState.RUNNING: DiagnosticStatus.OK,
          NodeState.WAITING: DiagnosticStatus.WARN, NodeState.STALE: DiagnosticStatus.ERROR,
          NodeState.FAULT: DiagnosticStatus.ERROR}


class PolicyNode(LifecycleNode):
    """Camera + joint-state topics -> policy chunks -> safe, blended, timed commands."""

    def __init__(self, *, runner: Any = None, **kwargs: Any) -> None:
        super().__init__('policy_node', **kwargs)
        self._runner_given = runner
        self.control: ControlLoop | None = None
        self._ticker: ControlClock | None = None
        self._output: CommandOutput | None = None
        self._subs: list[Any] = []
        self._timer: Any = None
        self.lifecycle = 'unconfigured'
        self.configure_error: BaseException | None = None
        self._diag_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.create_service(Trigger, '~/stop', self._on_stop)
        self.autostart = bool(declare(self, 'autostart', True, 'Configure and activate on '
                                      'start; false: wait for ~/change_state.'))
        if self.autostart:  # a configure error ends the process with its one line (run_node)
            if self.trigger_configure() != OK:
                raise self.configure_error or PtrError('policy_node: configure failed')
            self.trigger_activate()

    # -- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure(declare_runner_params(self))
        except Exception as err:  # a bad checkpoint or parameter: stay unconfigured, say why
            self.configure_error = err
            if not self.autostart:
                self.get_logger().error(f'configure failed: {err}')
            self._free()
            return FAILURE
        return self._entered('inactive')

    def _configure(self, load: RunnerParams) -> None:
        # The child loads its copy while this process loads the one it reads the profile from.
        model = ProcessRunner(load.checkpoint, device=load.device, threads=load.torch_threads) \
            if load.inference_process else None
        try:
            self._build(load, self._runner_given or _load_runner(load), model)
        except BaseException:
            if model is not None:
                model.close()
            raise

    def _build(self, load: RunnerParams, runner: Any, model: Any) -> None:
        self._load = load
        robot = _pick_robot(load.robot, list(runner.robots))
        entry = runner.profile(robot)
        profile = RobotProfile.from_dict(entry['profile'], source=f'{load.checkpoint}:{robot}')
        p = declare_policy_params(self, profile, chunk_length=int(runner.chunk_length))
        for line in served_rate_warnings(p, profile.rate_hz, int(runner.chunk_length)):
            self.get_logger().warning(line)
        self.runner, self.robot, self.profile, self.params = runner, robot, profile, p
        self.action_names = list(profile.action_names)
        self.lower, self.upper = command_limits(profile, self.action_names, p.joint_limit_margin,
                                                load_action_limits(p.action_limits_file))
        states, groups = (declare_arm_group_topics(self, profile, p.interface)
                          if profile.multi_arm else ([], []))
        self._group_states = states
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._output = CommandOutput(
            profile, interface=p.interface, rate_hz=p.rate_hz, command_topic=p.command_topic,
            group_topics=groups, extra_topics=declare_extra_action_topics(self, profile),
            make=lambda cls, topic: self.create_publisher(cls, topic, reliable))
        self.control = ControlLoop(
            runner, robot, profile, p, limits=(self.lower, self.upper),
            channels=dict(entry.get('image_channels', {})), publish=self._publish_command,
            log=self.get_logger(), changed=self._publish_diagnostics, model=model,
            checkpoint=load.checkpoint, node=self.get_fully_qualified_name())
        self.get_logger().info(f'warm-up inference took {self.control.warm_up():.3f} s')
        self._timer = self.create_timer(1.0 / p.diagnostics_rate_hz, self._publish_diagnostics)
        self.get_logger().info(
            f'serving robot {robot!r} from {load.checkpoint or "(runner)"}: '
            f'{len(self.action_names)} actions at {p.rate_hz:g} Hz, K={p.execute_steps}, '
            f'To={runner.obs_horizon}, L={runner.chunk_length}, {p.interface} -> '
            f'{p.command_topic}; disabled until ~/enable')

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        assert self.control is not None
        self._subscribe(self.control)
        self._ticker = ControlClock(1.0 / self.params.rate_hz, self.control.tick,
                                   on_overrun=self.control.cadence.overrun,
                                   on_error=self._on_tick_error,
                                   priority=self.params.control_priority,
                                   warn=self.get_logger().warning)
        self._ticker.start()
        if self.params.control_priority and self._load.inference_process:
            # Inference is in a child: this (executor) thread only takes messages; real-time,
            # it never holds the GIL or the store lock while ordinary processes have the CPU.
            why = set_fifo(max(self.params.control_priority - 1, 1))
            if why:
                self.get_logger().warning(f'executor thread: {why}')
        return self._entered('active')

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._hold('deactivated: holding')
        if self.control is not None:  # the cadence log gets the window in progress
            self.control.cadence.end_window()
        return self._entered('inactive')

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        return self._entered('unconfigured')

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()
        return self._entered('finalized')

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free()  # the safe state: nothing subscribed, nothing ticking, nothing published
        return self._entered('unconfigured')

    def _entered(self, label: str) -> TransitionCallbackReturn:
        self.lifecycle = label
        self.get_logger().info(f'lifecycle: {label}')
        self._publish_diagnostics()
        return OK

    def _hold(self, why: str) -> None:
        """Disarm and stop ticking; drop the subscriptions."""
        if self._ticker is not None and self._ticker.priority:
            set_fifo(0)  # this thread back to normal priority (no-op when it was not raised)
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        if self.control is not None and (self.control.gate.enabled or self._subs):
            self.control.stop(why)
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _free(self) -> None:
        self._hold('released')
        if self.control is not None:
            self.control.close()
            self.control = None
        for pub in self._output.publishers if self._output is not None else []:
            self.destroy_publisher(pub)
        self._output = None
        if self._timer is not None:
            self.destroy_timer(self._timer)
            self._timer = None

    def _subscribe(self, c: ControlLoop) -> None:
        s, p, now, sensor = c.store, self.params, time.monotonic, qos_profile_sensor_data
        sub = self._subs.append
        if self.profile.multi_arm:
            for k, topic in enumerate(self._group_states):
                sub(self.create_subscription(
                    JointState, topic, lambda m, k=k: s.on_group_state(k, m, now()), sensor))
        else:
            sub(self.create_subscription(
                JointState, p.state_topic, lambda m: s.on_joint_states(m, now()), sensor))
        for role, cam in p.cameras.items():
            sub(self.create_subscription(
                CompressedImage if cam.compressed else Image, cam.topic,
                lambda m, r=role: s.on_image(r, m, now()), sensor))
        for name, extra in p.extras.items():
            sub(self.create_subscription(
                message_class(extra.type), extra.topic,
                lambda m, n=name: s.on_extra_state(n, m, now()), sensor))

    # -- services, commands, diagnostics --------------------------------------------------
    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> Any:
        response.success, response.message = True, 'disabled'
        if request.data and (self.lifecycle != 'active' or self.control is None):
            response.success = False
            response.message = f'refused: the node is {self.lifecycle}; activate it first'
        elif request.data:
            assert self.control is not None
            response.success, response.message = self.control.enable()
        elif self.control is not None:
            self.control.stop('disabled by ~/enable false')
        self._publish_diagnostics()
        return response

    def _on_stop(self, request: Trigger.Request, response: Trigger.Response) -> Any:
        if self.control is not None:
            self.control.stop('stopped by ~/stop')
        response.success = True
        response.message = 'stopped; call ~/enable to resume'
        self._publish_diagnostics()
        return response

    def _on_tick_error(self, err: BaseException) -> None:
        if self.control is not None:
            self.control.fault(f'control tick failed: {type(err).__name__}: {err}')

    def _publish_command(self, points: Any, planned: float) -> None:
        """Called by the control tick; ``planned`` is its planned monotonic time."""
        assert self._output is not None
        late = Duration(nanoseconds=int((time.monotonic() - planned) * 1e9))
        self._output.publish(points, (self.get_clock().now() - late).to_msg())

    def _publish_diagnostics(self) -> None:
        diag = DiagnosticStatus(name=f'{self.get_name()}: policy', level=DiagnosticStatus.OK)
        values = {'lifecycle': self.lifecycle}
        if self.control is None:
            diag.message = f'{self.lifecycle}: configure and activate the node'
            values['state'] = NodeState.DISABLED.value
        else:
            status, got = self.control.diagnostics(self.params.interface)
            values.update(got)
            reason = status.reason if self.lifecycle == 'active' else \
                f'{self.lifecycle}: activate the node (lifecycle)'
            values['reason'] = reason
            diag.level, diag.hardware_id = LEVELS[status.state], self.robot
            diag.message = status.state.value + (f': {reason}' if reason else '')
        diag.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        self._free()
        super().destroy_node()


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
    # A thread waiting for the GIL asks for it after this interval (Python's default: 5 ms):
    # the control tick waking while inference runs Python code waits at most 1 ms.
    sys.setswitchinterval(0.001)
    run_node(PolicyNode, 'policy_node', args)


if __name__ == '__main__':
    main()
