"""The policy node driving the simulated arm, each in its own process, over real DDS.

Closed loop with a trained debug checkpoint: nothing moves until ``~/enable``; then commands come
at the control rate within the joint limits and the per-step bound; the camera watchdog holds
and resumes; ``~/stop`` halts at once; malformed messages are rejected and counted. Both command
interfaces and both image message types are used.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from rosharness import NodeProcess, Probe, SimRun, wait_for

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')

import simdata
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros

RATE = simdata.RATE_HZ
MAX_STEP = 0.02
LIMIT = simdata.LIMIT
EPS = 1e-9
STARTUP_S = 120.0  # node processes import torch and load the checkpoint on a loaded machine


def start_pair(
    launch_node: Any, names: dict[str, str], run: SimRun, *, interface: str = 'trajectory',
    compressed: bool = False, camera_timeout: float = 0.5, initial: float = 0.0,
    policy_params: dict[str, Any] | None = None,
) -> tuple[NodeProcess, NodeProcess, str]:
    camera = names['camera'] + ('/compressed' if compressed else '')
    command = names['trajectory'] if interface == 'trajectory' else names['forward']
    sim = launch_node('ptr_ros.sim_arm_node', {
        'profile': str(run.checkpoint),
        'joint_states_topic': names['joint_states'],
        'camera_topics': [f'front={camera}'],
        'image_size': list(simdata.SOURCE_SIZE),
        'trajectory_topic': names['trajectory'],
        'forward_topic': names['forward'],
        'initial_positions': [initial] * 3,
        'max_velocity': 5.0,
    }, names['sim'])
    policy = launch_node('ptr_ros.policy_node', {
        'checkpoint': str(run.checkpoint),
        'torch_threads': 1,
        'joint_states_topic': names['joint_states'],
        'cameras.front.topic': camera,
        'camera_timeout_s': camera_timeout,
        'joint_states_timeout_s': 0.5,
        'command_interface': interface,
        'command_topic': command,
        'max_step_change': MAX_STEP,
        'execute_steps': 4,
        'diagnostics_rate_hz': 5.0,
        **(policy_params or {}),
    }, names['policy'])
    return sim, policy, command


def wait_for_state(probe: Probe, node: str, state: str, timeout: float = STARTUP_S,
                   procs: tuple[NodeProcess, ...] = ()) -> dict[str, str]:
    def check() -> dict[str, str] | None:
        for p in procs:
            assert p.alive(), f'{p.log.name} exited:\n{p.output()[-3000:]}'
        diag = probe.latest_diagnostics(node)
        return diag if diag is not None and diag['state'] == state else None

    got: dict[str, str] = wait_for(check, timeout, f'{node} state {state}')
    return got


def positions(msg: Any) -> np.ndarray:
    if isinstance(msg, JointTrajectory):
        return np.array([list(p.positions) for p in msg.points])
    return np.array([list(msg.data)])


def check_commands(commands: list[tuple[float, Any]], start: np.ndarray) -> None:
    """Every point within limits; every step (between and inside messages) within MAX_STEP."""
    previous = start
    for _, msg in commands:
        pts = positions(msg)
        assert pts.shape[1] == 3
        assert np.all(np.abs(pts) <= LIMIT + EPS)
        steps = np.abs(np.diff(np.vstack([previous, pts]), axis=0))
        assert steps.max() <= MAX_STEP + EPS, steps
        previous = pts[0]


def periods(commands: list[tuple[float, Any]]) -> np.ndarray:
    return np.diff([t for t, _ in commands])


@pytest.mark.parametrize(('interface', 'compressed'), [('trajectory', False), ('forward', True)])
def test_closed_loop_moves_only_after_enable(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str], interface: str,
    compressed: bool,
) -> None:
    sim, policy, command = start_pair(launch_node, names, sim_run, interface=interface,
                                      compressed=compressed)
    msg_type = JointTrajectory if interface == 'trajectory' else Float64MultiArray
    probe.record('command', msg_type, command)
    probe.record('joint_states', JointState, names['joint_states'])
    probe.record('diagnostics', DiagnosticArray,
                 '/diagnostics')
    wait_for_state(probe, names['policy'], 'disabled', procs=(sim, policy))
    wait_for(lambda: len(probe.recorded.get('joint_states')) > 20, 30, 'sim joint states')

    # Disabled: observations flow, yet nothing is commanded and the arm stays where it is.
    time.sleep(2.0)
    assert probe.recorded.get('command') == []
    q_before = np.array(probe.recorded.get('joint_states')[-1][1].position)
    np.testing.assert_allclose(q_before, 0.0, atol=1e-12)

    response = probe.call(SetBool, f'/{names["policy"]}/enable', SetBool.Request(data=True))
    assert response.success
    wait_for(lambda: len(probe.recorded.get('command')) >= 30, 60, '30 commands')
    commands = probe.recorded.get('command')
    check_commands(commands, start=q_before)  # the first command is within MAX_STEP of rest
    # At the control rate: the median period is the nominal one (the load may delay a few).
    median = float(np.median(periods(commands)))
    assert median == pytest.approx(1 / RATE, rel=0.25), periods(commands)
    # The arm follows the commands.
    q_now = np.array(probe.recorded.get('joint_states')[-1][1].position)
    assert np.abs(q_now - q_before).max() > 2 * MAX_STEP
    diag = probe.latest_diagnostics(names['policy'])
    assert diag is not None
    assert diag['state'] == 'running'
    assert diag['rejected_total'] == '0'
    assert float(diag['inference_ms.p50']) > 0
    camera_source = 'camera/front'
    assert int(diag[f'received.{camera_source}']) > 0
    # Clean shutdown on SIGINT (what ros2 launch sends): both exit 0.
    assert policy.stop() == 0, policy.output()[-2000:]
    assert sim.stop() == 0, sim.output()[-2000:]


def test_camera_watchdog_holds_and_resumes(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str]
) -> None:
    timeout = 0.5
    sim, policy, command = start_pair(launch_node, names, sim_run, camera_timeout=timeout)
    probe.record('command', JointTrajectory, command)
    probe.record('diagnostics', DiagnosticArray,
                 '/diagnostics')
    wait_for_state(probe, names['policy'], 'disabled', procs=(sim, policy))
    probe.call(SetBool, f'/{names["policy"]}/enable', SetBool.Request(data=True))
    wait_for(lambda: len(probe.recorded.get('command')) >= 10, 60, 'commands after enable')

    probe.call(SetBool, f'/{names["sim"]}/cameras', SetBool.Request(data=False))
    off = time.monotonic()
    diag = wait_for_state(probe, names['policy'], 'stale', timeout=30)
    assert 'camera/front' in diag['reason']
    assert 'joint_states' not in diag['reason']
    time.sleep(2.0)
    # Commands stopped within the timeout: a command is only published while the newest frame
    # is younger than the timeout (1 s of slack for delivery on a loaded machine).
    last = probe.recorded.get('command')[-1][0]
    assert last - off <= timeout + 1.0, last - off
    quiet = [t for t, _ in probe.recorded.get('command') if t > off + timeout + 1.0]
    assert quiet == []

    probe.call(SetBool, f'/{names["sim"]}/cameras', SetBool.Request(data=True))
    on = time.monotonic()
    wait_for_state(probe, names['policy'], 'running', timeout=30)
    wait_for(lambda: [t for t, _ in probe.recorded.get('command') if t > on], 30,
             'commands after the camera returns')


def test_stop_halts_at_once_and_malformed_messages_are_counted(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str]
) -> None:
    sim, policy, command = start_pair(launch_node, names, sim_run)
    probe.record('command', JointTrajectory, command)
    probe.record('diagnostics', DiagnosticArray,
                 '/diagnostics')
    wait_for_state(probe, names['policy'], 'disabled', procs=(sim, policy))
    probe.call(SetBool, f'/{names["policy"]}/enable', SetBool.Request(data=True))
    wait_for(lambda: len(probe.recorded.get('command')) >= 10, 60, 'commands after enable')

    # Malformed messages beside the sim arm's good ones.
    js_pub = probe.node.create_publisher(JointState, names['joint_states'],
                                         qos_profile_sensor_data)
    img_pub = probe.node.create_publisher(Image, names['camera'], qos_profile_sensor_data)
    wrong_joints = JointState(name=['shoulder', 'elbow'], position=[0.0, 0.0])
    h, w = simdata.SOURCE_SIZE
    wrong_size = Image(height=10, width=10, encoding='rgb8', step=30, data=bytes(300))
    truncated = Image(height=h, width=w, encoding='rgb8', step=3 * w, data=bytes(100))

    def counts() -> dict[str, str] | None:
        diag = probe.latest_diagnostics(names['policy'])
        if diag is None:
            return None
        ok = (int(diag.get('rejected.joint_states', 0)) >= 1
              and int(diag.get('rejected.camera/front', 0)) >= 2)
        return diag if ok else None

    def publish_and_check() -> dict[str, str] | None:
        js_pub.publish(wrong_joints)
        img_pub.publish(wrong_size)
        img_pub.publish(truncated)
        return counts()

    diag = wait_for(publish_and_check, 30, 'rejections in diagnostics', poll=0.2)
    reasons = [k for k in diag if k.startswith('rejected.camera/front: ')]
    assert 'rejected.camera/front: wrong image size' in reasons
    assert 'rejected.camera/front: undecodable' in reasons
    assert 'rejected.joint_states: wrong joint set' in diag
    assert 'wrong image size: 10x10, expected 48x64' in policy.output()
    assert int(diag['rejected_total']) >= 3
    assert diag['state'] == 'running'  # bad messages never replace the good observations
    check_commands(probe.recorded.get('command')[-5:],
                   start=positions(probe.recorded.get('command')[-5][1])[0])

    response = probe.call(Trigger, f'/{names["policy"]}/stop', Trigger.Request())
    stopped = time.monotonic()
    assert response.success
    # The node's own count, published at the stop, never grows after it.
    at_stop = wait_for_state(probe, names['policy'], 'disabled', timeout=10)
    time.sleep(1.5)
    after = probe.latest_diagnostics(names['policy'])
    assert after is not None
    assert after['state'] == 'disabled'
    assert after['commands_published'] == at_stop['commands_published']
    late = [t for t, _ in probe.recorded.get('command') if t > stopped + 1.0]
    assert late == []


def test_bad_checkpoint_fails_with_one_line(launch_node: Any, names: dict[str, str],
                                            tmp_path: Any) -> None:
    missing = tmp_path / 'no_such_checkpoint'
    policy = launch_node('ptr_ros.policy_node', {'checkpoint': str(missing)}, names['policy'])
    code = policy.proc.wait(STARTUP_S)
    assert code == 2
    out = policy.output()
    assert str(missing) in out
    assert 'Traceback' not in out


def test_closed_loop_with_an_extra_state_observation(
    pose_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str]
) -> None:
    """The profile's PoseStamped extra state: the sim arm publishes it from its kinematics, the
    policy waits for it, watches it and runs with it."""
    sim, policy, command = start_pair(launch_node, names, pose_run, compressed=True)
    probe.record('command', JointTrajectory, command)
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    diag = wait_for_state(probe, names['policy'], 'disabled', procs=(sim, policy))
    assert 'age.extra/tool' in diag
    probe.call(SetBool, f'/{names["policy"]}/enable', SetBool.Request(data=True))
    wait_for(lambda: len(probe.recorded.get('command')) >= 10, 60, 'commands after enable')
    check_commands(probe.recorded.get('command')[-5:],
                   start=positions(probe.recorded.get('command')[-5][1])[0])
    diag = wait_for_state(probe, names['policy'], 'running', timeout=30)
    assert int(diag['received.extra/tool']) > 0
    assert diag['age.extra/tool'] != 'never'
