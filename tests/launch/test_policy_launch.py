"""``ros2 launch ptr policy.launch.py checkpoint:=... sim:=true`` under launch_pytest.

The nodes come up (the policy reports ``disabled`` and the sim arm publishes), nothing moves
until ``~/enable``, then the policy drives the simulated arm, and ``ros2 launch`` shuts down
cleanly on SIGINT. Runs under ``colcon test`` where launch_pytest exists; skipped elsewhere.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

NO_LAUNCH = 'launch_pytest not installed (runs under colcon test on a ROS 2 machine)'
launch_pytest = pytest.importorskip('launch_pytest', reason=NO_LAUNCH)

from launch_pytest.tools import process as process_tools  # noqa: E402

import launch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

import simdata  # noqa: E402
from rosharness import Probe, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('policy_launch')
    bags = simdata.write_bags(root / 'bags')
    dataset = simdata.build_dataset(root, bags)
    return simdata.train_checkpoint(REPO, dataset, root / 'run')


@pytest.fixture
def ros2_launch(checkpoint: Path) -> launch.actions.ExecuteProcess:
    return launch.actions.ExecuteProcess(
        cmd=['ros2', 'launch', 'ptr', 'policy.launch.py', f'checkpoint:={checkpoint}',
             'sim:=true', 'device:=cpu'],
        output='screen', cached_output=True, sigterm_timeout='20', sigkill_timeout='20')


@launch_pytest.fixture
def launch_description(ros2_launch: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([ros2_launch, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_policy_drives_the_sim_arm_once_enabled(ros2_launch, launch_context):  # type: ignore[no-untyped-def]
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    process_tools.wait_for_start_sync(launch_context, ros2_launch, timeout=60)
    probe = Probe('policy_launch_probe')
    try:
        probe.record('command', JointTrajectory, '/joint_trajectory_controller/joint_trajectory')
        probe.record('joint_states', JointState, '/joint_states')
        probe.record('diagnostics', DiagnosticArray, '/diagnostics')

        def disabled() -> bool:
            diag = probe.latest_diagnostics('policy_node')
            return diag is not None and diag['state'] == 'disabled'

        wait_for(disabled, 180, 'policy_node reporting disabled')
        wait_for(lambda: len(probe.recorded.get('joint_states')) > 10, 60, 'sim arm joint states')
        time.sleep(1.0)
        assert probe.recorded.get('command') == []
        start = list(probe.recorded.get('joint_states')[-1][1].position)

        assert probe.call(SetBool, '/policy_node/enable', SetBool.Request(data=True)).success
        wait_for(lambda: len(probe.recorded.get('command')) >= 20, 60, 'commands after enable')
        now = list(probe.recorded.get('joint_states')[-1][1].position)
        assert max(abs(a - b) for a, b in zip(now, start)) > 0.01
    finally:
        probe.close()
    yield
    # After launch shut down (SIGINT to ros2 launch): both nodes finished cleanly.
    assert ros2_launch.return_code in (0, -2)
    output = ros2_launch.get_stdout()
    assert 'Traceback' not in output
    assert 'process has died' not in output
    assert output.count('process has finished cleanly') == 2
