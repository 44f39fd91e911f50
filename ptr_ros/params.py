"""Node parameters: declared with descriptions and ranges, one line each, and read into typed,
frozen dataclasses (``PolicyNodeParams`` and the rest, defined rclpy-free in
``ptr_ros.settings``) that the node keeps instead of loose values.

Defaults are never empty lists: an empty list has no element type, and Humble's rclpy would
declare it as a byte array, which a YAML list of strings then fails to override.
"""

from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node

from bag_tools.profile import RobotProfile
from ptr_core.inference import ExecutionConfig
from ptr_ros.settings import (
    DEFAULT_COMMAND_TOPICS,
    INTERFACES,
    TRANSPORTS,
    CameraParams,
    ExtraStateParams,
    PolicyNodeParams,
    RunnerParams,
)

__all__ = [
    'declare',
    'declare_arm_group_topics',
    'declare_extra_action_topics',
    'declare_policy_params',
    'declare_runner_params',
]

def declare(
    node: Node,
    name: str,
    default: Any,
    description: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    read_only: bool = True,
    choices: tuple[str, ...] = (),
) -> Any:
    """Declare ``name`` and return its value (override from the params file or CLI, else default);
    a name declared before (configure after cleanup) returns its value.

    ``lo``/``hi`` become an ``IntegerRange`` or ``FloatingPointRange`` (rclpy refuses values
    outside them); ``choices`` are listed in the description and checked here.
    """
    text = description
    if choices:
        text += f' One of: {", ".join(choices)}.'
    descriptor = ParameterDescriptor(description=text, read_only=read_only)
    if lo is not None and hi is not None:
        if isinstance(default, bool) or not isinstance(default, (int, float)):
            raise TypeError(f'parameter {name}: a range needs a numeric default')
        if isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=1)]
        else:
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)
            ]
        descriptor.additional_constraints = f'{lo} <= {name} <= {hi}'
    if node.has_parameter(name):  # a lifecycle node configured again after a cleanup
        value = node.get_parameter(name).value
    else:
        value = node.declare_parameter(name, default, descriptor).value
    if choices and value not in choices:
        msg = f'parameter {name}: {value!r} is not one of {", ".join(choices)}'
        raise ValueError(msg)
    return value


def declare_runner_params(node: Node) -> RunnerParams:
    return RunnerParams(
        checkpoint=declare(node, 'checkpoint', '', 'Checkpoint directory (safetensors + JSON).'),
        device=declare(node, 'device', 'cpu', 'Torch device for inference: cpu, cuda, cuda:N.'),
        torch_threads=declare(node, 'torch_threads', 0, 'Torch CPU threads for inference (0: '
                              'torch default).', lo=0, hi=256),
        robot=declare(node, 'robot', '', 'Robot (embodiment) to serve; empty: the '
                      "checkpoint's only robot."),
        inference_process=declare(node, 'inference_process', False, 'Run inference in a '
                                  'child process (true) or a thread of the node (false).'),
    )


def declare_policy_params(
    node: Node, profile: RobotProfile, *, chunk_length: int
) -> PolicyNodeParams:
    """Declare the control and observation parameters; defaults come from ``profile`` and the
    policy's ``chunk_length`` (K = L / 2)."""
    control = _declare_control(node, profile, chunk_length)
    return PolicyNodeParams(**control, **_declare_observations(node, profile),
                            **_declare_reporting(node))


def _declare_control(node: Node, p: RobotProfile, chunk_length: int) -> dict[str, Any]:
    rate = declare(node, 'control_rate_hz', 0.0, "Command rate (Hz); 0: the profile's "
                   f'rate ({p.rate_hz:g} Hz), the rate the policy was trained at.',
                   lo=0.0, hi=1000.0)
    execute_steps = declare(
        node, 'execute_steps', max(1, chunk_length // 2), 'K: chunk actions executed before '
        'the next chunk is requested; keep K + inference latency (in steps) below the chunk '
        'length L so chunks overlap. Default L / 2.', lo=1, hi=1000)
    sampling_steps = declare(node, 'sampling_steps', 0, 'Denoising/integration steps '
                             "per chunk; 0: the checkpoint's default.", lo=0, hi=1000)
    ensemble = declare(node, 'temporal_ensembling', True, 'Blend overlapping chunks '
                       '(weights exp(-decay * j), j = 0 the oldest chunk).')
    decay = declare(node, 'ensemble_decay', 0.01, 'Temporal-ensembling decay; 0 '
                    'averages the chunks equally.', lo=0.0, hi=10.0)
    interface = declare(node, 'command_interface', 'trajectory', 'Output message: '
                        'trajectory (JointTrajectory for joint_trajectory_controller) '
                        'or forward (Float64MultiArray for forward_position_controller).',
                        choices=INTERFACES)
    topic = declare(node, 'command_topic', '', 'Command topic; empty: '
                    '/joint_trajectory_controller/joint_trajectory or '
                    '/forward_position_controller/commands by command_interface.')
    return {
        'rate_hz': float(rate) or p.rate_hz,
        'execution': ExecutionConfig(execute_steps=int(execute_steps), ensemble=bool(ensemble),
                                     decay=float(decay)),
        'sampling_steps': int(sampling_steps),
        'interface': interface,
        'command_topic': topic or DEFAULT_COMMAND_TOPICS[interface],
        'trajectory_points': declare(node, 'trajectory_points', 0, 'Points per '
                                     'JointTrajectory; 0: execute_steps.', lo=0, hi=1000),
        'max_step_change': declare(node, 'max_step_change', 0.05, 'Largest change of a '
                                   'command between control steps (rad or m per step).',
                                   lo=0.0, hi=10.0),
        'joint_limit_margin': declare(node, 'joint_limit_margin', 0.0, 'Commands stay this far '
                                      "inside the profile's joint limits (rad or m).",
                                      lo=0.0, hi=10.0),
        'max_step_accel': declare(node, 'max_step_accel', 0.0, 'Largest change of the '
                                  'per-step command change between control steps (rad or m '
                                  'per step per step); 0: off. Commands ramp in from rest.',
                                  lo=0.0, hi=10.0),
        'allow_rate_mismatch': declare(node, 'allow_rate_mismatch', False, 'Serve at a '
                                       'control_rate_hz other than the training rate (the '
                                       'motion is then played faster or slower than '
                                       'learned): for latency benchmarks only.'),
        'joint_limit_tolerance': declare(node, 'joint_limit_tolerance', 0.05, 'A measured '
                                         'joint further than this outside its limits is a '
                                         'fault: nothing is published until ~/enable.',
                                         lo=0.0, hi=10.0),
        'action_limits_file': declare(node, 'action_limits_file', '', 'YAML file of '
                                      'name: [lower, upper] command limits, for action '
                                      'dimensions that are not joints (and tighter bounds).'),
        'control_priority': declare(node, 'control_priority', 50, 'SCHED_FIFO priority of '
                                    'the control thread (1-99; needs CAP_SYS_NICE or an rtprio '
                                    'limit, else a warning and normal priority); 0: normal.',
                                    lo=0, hi=99),
    }


def _declare_reporting(node: Node) -> dict[str, Any]:
    return {
        'diagnostics_rate_hz': declare(node, 'diagnostics_rate_hz', 2.0,
                                       '/diagnostics rate (Hz).', lo=0.1, hi=100.0),
        'cadence_log': declare(node, 'cadence_log', '', 'A file each cadence window is '
                               'appended to as one JSON line (ptr report --cadence); '
                               'empty: off.'),
        'cadence_window_s': declare(node, 'cadence_window_s', 60.0, 'Window of the cadence '
                                    'report, in diagnostics and the cadence log (s).',
                                    lo=0.1, hi=86400.0),
    }


def _declare_observations(node: Node, p: RobotProfile) -> dict[str, Any]:
    state_topic = declare(node, 'joint_states_topic', p.state_topic,
                          'sensor_msgs/JointState input.')
    state_timeout = declare(node, 'joint_states_timeout_s', 0.25, 'Hold when the '
                            'newest joint state is older than this (s).', lo=0.001, hi=60.0)
    return {
        'state_topic': state_topic,
        'state_timeout_s': float(state_timeout),
        'cameras': _declare_cameras(node, p),
        'extras': {
            extra.name: ExtraStateParams(
                name=extra.name, type=extra.type, joints=tuple(extra.joints),
                topic=declare(node, f'extra_state.{extra.name}.topic', extra.topic,
                              f'{extra.type} input.'),
                timeout_s=float(declare(node, f'extra_state.{extra.name}.timeout_s', 0.5,
                                        f'{extra.name} watchdog timeout (s).',
                                        lo=0.001, hi=60.0)),
            )
            for extra in p.extra_state
        },
    }


def _declare_cameras(node: Node, p: RobotProfile) -> dict[str, CameraParams]:
    default_transport = declare(node, 'image_transport', 'auto', 'Camera message type: '
                                'auto (CompressedImage when the topic ends in /compressed), '
                                'raw or compressed.', choices=TRANSPORTS)
    camera_timeout = declare(node, 'camera_timeout_s', 0.5, 'Hold when a camera frame is '
                             'older than this (s); per camera: cameras.<role>.timeout_s.',
                             lo=0.001, hi=60.0)
    cameras: dict[str, CameraParams] = {}
    for cam in p.cameras:
        key = f'cameras.{cam.role}'
        # a camera the bags held as a video file has no topic in the profile: name the live one
        topic = declare(node, f'{key}.topic', cam.topic or f'/{cam.role}/image_raw',
                        f'Camera {cam.role!r} input.')
        transport = declare(node, f'{key}.transport', default_transport, f'Camera '
                            f'{cam.role!r} message type.', choices=TRANSPORTS)
        timeout = declare(node, f'{key}.timeout_s', float(camera_timeout),
                          f'Camera {cam.role!r} watchdog timeout (s).', lo=0.001, hi=60.0)
        size = declare(node, f'{key}.source_size', [0, 0], f'Camera {cam.role!r} image '
                       '[height, width] as sent; [0, 0]: locked to the first frame. Frames '
                       'of another size are rejected.')
        compressed = transport == 'compressed' or (
            transport == 'auto' and topic.endswith('/compressed'))
        cameras[cam.role] = CameraParams(
            role=cam.role, topic=topic, compressed=compressed, timeout_s=float(timeout),
            depth=cam.depth, source_size=(int(size[0]), int(size[1])) if any(size) else None,
        )
    return cameras


def declare_arm_group_topics(
    node: Node, p: RobotProfile, interface: str,
) -> tuple[list[str], list[str]]:
    """Per arm group of an arm-group profile: ``arms.<group>.state_topic`` (its JointState
    input) and ``arms.<group>.command_topic`` (its command output, ``interface``)."""
    states, commands = [], []
    for g in p.groups:
        states.append(declare(node, f'arms.{g.name}.state_topic', g.state_topic,
                              f'sensor_msgs/JointState input of arm group {g.name!r}.'))
        commands.append(declare(
            node, f'arms.{g.name}.command_topic', f'/{g.name}{DEFAULT_COMMAND_TOPICS[interface]}',
            f'Command topic of arm group {g.name!r} ({interface} interface).'))
    return states, commands


def declare_extra_action_topics(node: Node, p: RobotProfile) -> list[str]:
    """``extra_action.<name>.topic``: the output topic of each extra action (a base's cmd_vel)."""
    return [declare(node, f'extra_action.{e.name}.topic', e.topic, f'{e.type} output ({e.name}).')
            for e in p.extra_action]
