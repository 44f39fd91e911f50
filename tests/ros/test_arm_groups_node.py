"""The policy node serves an arm-group profile: a two-arm leader/follower rig (the same joint
names on both arms) -> ``ptr ingest`` -> a debug checkpoint -> the node, in its own process over
real DDS, subscribes to each arm's state topic and publishes each arm's command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosharness import REPO, Probe, wait_for

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')

import simdata
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros

JOINTS = ['joint1', 'joint2', 'joint3']
ARMS = ('left', 'right')
T0 = 1_700_000_000_000_000_000


def rig_profile(prefix: str) -> dict[str, Any]:
    return {
        'robot': 'rig', 'rate_hz': 10.0, 'min_episode_steps': 8,
        'arms': {arm: {
            'joints': JOINTS,
            'state_topic': f'{prefix}/arm_{arm}_follow/joint_states',
            'action': {'source': 'command', 'topic': f'{prefix}/arm_{arm}_lead/joint_states'},
            'joint_limits': {'lower': [-1.0] * 3, 'upper': [1.0] * 3},
        } for arm in ARMS},
    }


@pytest.fixture(scope='module')
def rig_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip('torch')
    from bagfactory import BagContent, write_bag

    from bag_tools.ingest import ingest
    from bag_tools.profile import RobotProfile

    root = tmp_path_factory.mktemp('rig')
    bags = []
    for e in range(3):
        c = BagContent()
        for i in range(81):
            t = i / 20
            for sign, arm in zip((1.0, -1.0), ARMS):
                q = sign * 0.3 * np.sin(t + e + np.arange(3))
                c.joint_state(f'/rig/arm_{arm}_follow/joint_states', T0 + round(t * 1e9),
                              JOINTS, q)
                c.joint_state(f'/rig/arm_{arm}_lead/joint_states', T0 + round(t * 1e9) + 1000,
                              JOINTS, q * 1.1)
        bags.append(write_bag(c, root / f'rig_{e}', 'mcap'))
    prof = RobotProfile.from_dict(rig_profile('/rig'), source='rig')
    result = ingest(bags, prof, root / 'dataset', workers=1)
    assert result.ok, [b.reason for b in result.bags]
    return simdata.train_checkpoint(REPO, root / 'dataset', root / 'run')


def test_node_subscribes_to_both_arms_and_commands_both(
    launch_node: Any, names: dict[str, str], probe: Probe, rig_checkpoint: Path,
) -> None:
    ns = f'/{names["policy"]}'
    states = {arm: f'{ns}/arm_{arm}_follow/joint_states' for arm in ARMS}
    commands = {arm: f'{ns}/{arm}/joint_trajectory' for arm in ARMS}
    policy = launch_node('ptr_ros.policy_node', {
        'checkpoint': str(rig_checkpoint), 'torch_threads': 1, 'execute_steps': 4,
        'joint_states_timeout_s': 0.5, 'diagnostics_rate_hz': 5.0, 'max_step_change': 0.05,
        **{f'arms.{arm}.state_topic': states[arm] for arm in ARMS},
        **{f'arms.{arm}.command_topic': commands[arm] for arm in ARMS},
    }, names['policy'])
    for arm in ARMS:
        probe.record(arm, JointTrajectory, commands[arm])
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    pubs = {arm: probe.node.create_publisher(JointState, states[arm], qos_profile_sensor_data)
            for arm in ARMS}
    positions = {'left': [0.1, 0.2, 0.3], 'right': [-0.1, -0.2, -0.3]}

    def publish(arms: tuple[str, ...]) -> None:
        for arm in arms:
            msg = JointState(name=JOINTS[::-1], position=positions[arm][::-1])
            msg.header.stamp = probe.node.get_clock().now().to_msg()
            pubs[arm].publish(msg)

    # the node subscribed to each arm's topic (seen from the graph)
    wait_for(lambda: all(pubs[a].get_subscription_count() >= 1 for a in ARMS), 120,
             'the node subscribing to both arm state topics', poll=0.2)
    wait_for(lambda: probe.latest_diagnostics(names['policy']) is not None or
             not policy.alive(), 120, 'diagnostics', poll=0.2)
    assert policy.alive(), policy.output()[-3000:]
    probe.call(SetBool, f'{ns}/enable', SetBool.Request(data=True))
    # only the left arm's state: the right arm's watchdog holds the node, nothing is commanded
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        publish(('left',))
        time.sleep(0.05)
    assert not probe.recorded.get('left')
    assert not probe.recorded.get('right')
    # both arms: both commands, each under its own (unprefixed) joint names, from the
    # measured position within the step bound
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and not (
            len(probe.recorded.get('left')) >= 3 and len(probe.recorded.get('right')) >= 3):
        publish(ARMS)
        time.sleep(0.05)
    for arm in ARMS:
        got = probe.recorded.get(arm)
        assert len(got) >= 3, f'{arm}: {len(got)} commands\n{policy.output()[-3000:]}'
        msg = got[0][1]
        assert list(msg.joint_names) == JOINTS
        first = np.asarray(msg.points[0].positions)
        assert np.all(np.abs(first - positions[arm]) <= 0.05 + 1e-9), (arm, first)


@pytest.fixture(scope='module')
def base_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-joint arm on a mobile base: the joint's next state and the base's cmd_vel."""
    pytest.importorskip('torch')
    from bagfactory import BagContent, write_bag

    from bag_tools.ingest import ingest
    from bag_tools.profile import RobotProfile

    root = tmp_path_factory.mktemp('base')
    bags = []
    for e in range(3):
        c = BagContent()
        for i in range(81):
            t = i / 20
            c.joint_state('/base/joint_states', T0 + round(t * 1e9), ['a'],
                          [0.3 * np.sin(t + e)])
            c.twist('/base/cmd_vel', T0 + round(t * 1e9) + 1000, [0.2, 0.0, 0.0],
                    [0.0, 0.0, 0.1 * np.cos(t)])
        bags.append(write_bag(c, root / f'base_{e}', 'mcap'))
    prof = RobotProfile.from_dict({
        'robot': 'base', 'joints': ['a'], 'state_topic': '/base/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0, 'min_episode_steps': 8,
        'joint_limits': {'lower': [-1.0], 'upper': [1.0]},
        'extra_action': [{'topic': '/base/cmd_vel', 'type': 'geometry_msgs/msg/Twist',
                          'name': 'base', 'limits': {'lower': [-0.2] * 6, 'upper': [0.2] * 6}}],
    }, source='base')
    result = ingest(bags, prof, root / 'dataset', workers=1)
    assert result.ok, [b.reason for b in result.bags]
    return simdata.train_checkpoint(REPO, root / 'dataset', root / 'run')


def test_node_publishes_cmd_vel_apart_from_the_joint_command(
    launch_node: Any, names: dict[str, str], probe: Probe, base_checkpoint: Path,
) -> None:
    from geometry_msgs.msg import Twist

    ns = f'/{names["policy"]}'
    policy = launch_node('ptr_ros.policy_node', {
        'checkpoint': str(base_checkpoint), 'torch_threads': 1, 'execute_steps': 4,
        'joint_states_topic': f'{ns}/joint_states', 'command_topic': f'{ns}/trajectory',
        'extra_action.base.topic': f'{ns}/cmd_vel', 'max_step_change': 0.5,
        'diagnostics_rate_hz': 5.0,
    }, names['policy'])
    probe.record('trajectory', JointTrajectory, f'{ns}/trajectory')
    probe.record('cmd_vel', Twist, f'{ns}/cmd_vel')
    pub = probe.node.create_publisher(JointState, f'{ns}/joint_states', qos_profile_sensor_data)
    wait_for(lambda: pub.get_subscription_count() >= 1 or not policy.alive(), 120,
             'the node subscribing', poll=0.2)
    assert policy.alive(), policy.output()[-3000:]
    probe.call(SetBool, f'{ns}/enable', SetBool.Request(data=True))
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and len(probe.recorded.get('cmd_vel')) < 3:
        msg = JointState(name=['a'], position=[0.1])
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        pub.publish(msg)
        time.sleep(0.05)
    twists = probe.recorded.get('cmd_vel')
    assert len(twists) >= 3, policy.output()[-3000:]
    trajectories = probe.recorded.get('trajectory')
    assert trajectories
    assert list(trajectories[0][1].joint_names) == ['a']  # no base.* dims in the arm command
    assert len(trajectories[0][1].points[0].positions) == 1
    for _, v in twists:  # the base's limits hold (issue 30: cmd_vel was served unlimited)
        values = [v.linear.x, v.linear.y, v.linear.z, v.angular.x, v.angular.y, v.angular.z]
        assert all(np.isfinite(values))
        assert max(abs(x) for x in values) <= 0.2 + 1e-9
