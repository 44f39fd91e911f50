"""``ros2 launch ptr policy.launch.py checkpoint:=... sim:=true`` under launch_pytest.

Against ``ptr`` colcon-built into a scratch workspace (``ptr_install``): both nodes come up (the
policy reports ``disabled`` and the sim arm publishes), nothing moves until ``~/enable``, then
the policy drives the simulated arm, and ``ros2 launch`` shuts both down on SIGINT with exit 0.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from launchharness import LAUNCH_MISSING, ColconInstall, reap_children, wait_for_start

launch_pytest = pytest.importorskip('launch_pytest', reason=LAUNCH_MISSING)

import launch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

from rosharness import Probe, wait_for  # noqa: E402

START_S = 240.0  # two node processes importing torch on a loaded 2-core machine


@pytest.fixture
def ros2_launch(ptr_install: ColconInstall, sim_checkpoint: Path,
                tmp_path: Path) -> launch.actions.ExecuteProcess:
    return launch.actions.ExecuteProcess(
        cmd=['ros2', 'launch', 'ptr', 'policy.launch.py', f'checkpoint:={sim_checkpoint}',
             'sim:=true', 'device:=cpu'],
        cwd=str(tmp_path), additional_env={**ptr_install.env, 'OMP_NUM_THREADS': '1'},
        output='screen', cached_output=True, sigterm_timeout='60', sigkill_timeout='30')


@launch_pytest.fixture
def launch_description(ros2_launch: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([ros2_launch, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_policy_drives_the_sim_arm_once_enabled(ros2_launch, launch_context):  # type: ignore[no-untyped-def]
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    assert wait_for_start(launch_context, ros2_launch, 120), 'ros2 launch did not start'
    probe = Probe('policy_launch_probe')
    try:
        probe.record('command', JointTrajectory, '/joint_trajectory_controller/joint_trajectory')
        probe.record('joint_states', JointState, '/joint_states')
        probe.record('diagnostics', DiagnosticArray, '/diagnostics')

        def disabled() -> bool:
            diag = probe.latest_diagnostics('policy_node')
            return diag is not None and diag['state'] == 'disabled'

        def states() -> int:
            return len(probe.recorded.get('joint_states'))

        wait_for(disabled, START_S, 'policy_node reporting disabled')
        wait_for(lambda: states() > 10, START_S, 'sim arm joint states')
        # Disabled: a window of 20 more joint states (2 s at 10 Hz) with no command, no motion.
        seen = states()
        start = list(probe.recorded.get('joint_states')[-1][1].position)
        wait_for(lambda: states() >= seen + 20, 60, '20 more joint states while disabled')
        assert probe.recorded.get('command') == []
        still = list(probe.recorded.get('joint_states')[-1][1].position)
        assert max(abs(a - b) for a, b in zip(still, start)) < 1e-9

        assert probe.call(SetBool, '/policy_node/enable', SetBool.Request(data=True)).success
        wait_for(lambda: len(probe.recorded.get('command')) >= 20, 120, 'commands after enable')
        now = list(probe.recorded.get('joint_states')[-1][1].position)
        assert max(abs(a - b) for a, b in zip(now, start)) > 0.01
    finally:
        probe.close()
    yield
    # launch_pytest has shut the launch down: SIGINT to `ros2 launch`, which stops both nodes.
    output = ros2_launch.get_stdout()
    assert reap_children(output) == [], 'nodes outlived ros2 launch'
    assert ros2_launch.return_code == 0, output[-3000:]
    assert 'Traceback' not in output
    assert 'process has died' not in output
    assert output.count('process has finished cleanly') == 2, output[-3000:]
