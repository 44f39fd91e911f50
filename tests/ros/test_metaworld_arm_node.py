"""``metaworld_arm_node`` (the demo's simulated Sawyer) over real DDS: in lockstep it steps the
simulator once per command, re-arms the policy at every episode reset, it writes its summary
when ``duration_s`` ends, and it stops cleanly
(exit 0, no traceback) on SIGINT while commands are streaming in — the race between SIGINT and a
message take that used to end in a RuntimeError."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from rosharness import Probe, wait_for

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')
pytest.importorskip('metaworld', reason="the simulator is not installed (pip install -e '.[sim]')")

from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool

from ptr_sim.setups import get_setup

SETUP = get_setup('a')


def _stream(probe: Probe, stop: threading.Event, command: list[float]) -> None:
    pub = probe.node.create_publisher(
        Float64MultiArray, SETUP.command_topic,
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    while not stop.wait(0.01):
        pub.publish(Float64MultiArray(data=command))


def _start_streaming(probe: Probe, command: list[float]) -> tuple[threading.Event, Any]:
    stop = threading.Event()
    thread = threading.Thread(target=_stream, args=(probe, stop, command), daemon=True)
    thread.start()
    return stop, thread


def test_arm_node_steps_on_commands_and_writes_its_summary(
    tmp_path: Path, launch_node: Any, probe: Probe
) -> None:
    summary = tmp_path / 'arm.json'
    probe.record('state', JointState, SETUP.state_topic, qos_profile_sensor_data)
    calls: list[bool] = []

    def enable(req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        calls.append(bool(req.data))
        res.success = True
        res.message = 'enabled' if req.data else 'disabled'
        return res

    probe.node.create_service(SetBool, '/arm_test_policy/enable', enable)
    arm = launch_node('ptr_ros.metaworld_arm_node',
                      {'task': 'push-v3', 'setup': 'a', 'duration_s': 3.0,
                       'summary': str(summary), 'max_steps': 20, 'lockstep': True,
                       'enable_service': '/arm_test_policy/enable'},
                      'metaworld_arm_summary')
    wait_for(lambda: calls == [True], 60, 'the arm node to arm the policy')
    stop, thread = _start_streaming(probe, [0.0, 0.0, 0.0, -1.0])
    try:
        wait_for(lambda: not arm.alive(), 90, 'the arm node to end after duration_s')
    finally:
        stop.set()
        thread.join(5)
    assert arm.stop() == 0, arm.output()[-2000:]
    result = json.loads(summary.read_text())
    assert result['task'] == 'push-v3'
    assert result['enabled']
    assert result['commands'] > 10
    assert result['sim_steps'] == result['commands']  # lockstep: one step per command
    assert result['episodes'] >= 1  # max_steps 20 resets the episode within 3 s of commands
    # every reset disarms and re-arms the policy (a fresh observation history per episode)
    assert calls[:3] == [True, False, True]
    assert calls.count(False) >= result['episodes'] - 1
    assert result['dropped'] > 0  # commands that came in while it re-armed were not applied
    assert result['successes'] == 0  # a hold-still command solves nothing
    assert 'Traceback' not in arm.output()


def test_arm_node_stops_cleanly_on_sigint_while_commands_stream(
    launch_node: Any, probe: Probe
) -> None:
    probe.record('state', JointState, SETUP.state_topic, qos_profile_sensor_data)
    arm = launch_node('ptr_ros.metaworld_arm_node', {'task': 'push-v3', 'setup': 'a'},
                      'metaworld_arm_sigint')
    wait_for(lambda: len(probe.recorded.get('state')) >= 5, 60, 'joint states')
    stop, thread = _start_streaming(probe, [0.1, 0.0, 0.0, 0.0])
    try:
        seen = len(probe.recorded.get('state'))
        wait_for(lambda: len(probe.recorded.get('state')) >= seen + 40, 30, 'more joint states')
        assert arm.stop() == 0, arm.output()[-2000:]
    finally:
        stop.set()
        thread.join(5)
    assert 'Traceback' not in arm.output(), arm.output()[-2000:]
