"""The policy node as a managed node, driven over its real lifecycle services.

``autostart:=false``: the node waits unconfigured; configure loads the checkpoint (a missing one
fails the transition and leaves the node unconfigured, alive); ``~/enable`` is refused until the
node is active; active and enabled it drives the sim arm with trajectories stamped with the
control tick's planned time; deactivate holds (no command after it), cleanup frees, configure
again works, shutdown finalizes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from rosharness import Probe, SimRun, wait_for
from test_policy_node import STARTUP_S, start_pair, wait_for_state

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

pytestmark = pytest.mark.ros


def lifecycle(probe: Probe, node: str) -> str:
    got = probe.call(GetState, f'/{node}/get_state', GetState.Request(), timeout=STARTUP_S)
    return str(got.current_state.label)


def change(probe: Probe, node: str, transition: int) -> bool:
    request = ChangeState.Request(transition=Transition(id=transition))
    return bool(probe.call(ChangeState, f'/{node}/change_state', request, timeout=STARTUP_S)
                .success)


def stamp_s(msg: Any) -> float:
    return float(msg.header.stamp.sec) + float(msg.header.stamp.nanosec) * 1e-9


def test_lifecycle_transitions_over_ros(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str],
) -> None:
    sim, policy, command = start_pair(launch_node, names, sim_run,
                                      policy_params={'autostart': False})
    node = names['policy']
    probe.record('command', JointTrajectory, command)
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    assert lifecycle(probe, node) == 'unconfigured'
    enable = probe.call(SetBool, f'/{node}/enable', SetBool.Request(data=True))
    assert not enable.success
    assert 'unconfigured' in enable.message

    assert change(probe, node, Transition.TRANSITION_CONFIGURE)
    assert lifecycle(probe, node) == 'inactive'
    enable = probe.call(SetBool, f'/{node}/enable', SetBool.Request(data=True))
    assert not enable.success
    assert 'inactive' in enable.message

    assert change(probe, node, Transition.TRANSITION_ACTIVATE)
    assert lifecycle(probe, node) == 'active'
    diag = wait_for_state(probe, node, 'disabled', procs=(sim, policy))
    assert diag['lifecycle'] == 'active'
    time.sleep(1.0)
    assert probe.recorded.get('command') == []  # active, yet disabled: nothing moves
    assert probe.call(SetBool, f'/{node}/enable', SetBool.Request(data=True)).success
    wait_for(lambda: len(probe.recorded.get('command')) >= 12, 60, 'commands after enable')

    # Stamped with the planned tick time: on the 1/rate grid, whatever the delivery delay.
    stamps = np.array([stamp_s(m) for _, m in probe.recorded.get('command')])
    assert (stamps > 0).all()
    steps = np.diff(stamps) * 10.0  # 10 Hz
    np.testing.assert_allclose(steps, np.round(steps), atol=0.02)
    assert (np.round(steps) >= 1).all()

    assert change(probe, node, Transition.TRANSITION_DEACTIVATE)
    held = time.monotonic()
    assert lifecycle(probe, node) == 'inactive'
    time.sleep(1.5)
    assert [t for t, _ in probe.recorded.get('command') if t > held + 0.5] == []
    diag = wait_for_state(probe, node, 'disabled', timeout=30)
    assert diag['lifecycle'] == 'inactive'

    assert change(probe, node, Transition.TRANSITION_CLEANUP)
    assert lifecycle(probe, node) == 'unconfigured'
    assert change(probe, node, Transition.TRANSITION_CONFIGURE)  # parameters declared before
    assert change(probe, node, Transition.TRANSITION_ACTIVATE)
    assert probe.call(SetBool, f'/{node}/enable', SetBool.Request(data=True)).success
    again = time.monotonic()
    wait_for(lambda: [t for t, _ in probe.recorded.get('command') if t > again], 60,
             'commands after configure -> activate again')
    assert change(probe, node, Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert lifecycle(probe, node) == 'finalized'
    assert policy.alive()


def test_a_failed_configure_leaves_the_node_unconfigured_and_alive(
    launch_node: Any, probe: Probe, names: dict[str, str], tmp_path: Any,
) -> None:
    missing = tmp_path / 'no_such_checkpoint'
    policy = launch_node('ptr_ros.policy_node', {'checkpoint': str(missing),
                                                 'autostart': False}, names['policy'])
    node = names['policy']
    assert lifecycle(probe, node) == 'unconfigured'
    assert not change(probe, node, Transition.TRANSITION_CONFIGURE)
    assert lifecycle(probe, node) == 'unconfigured'
    assert policy.alive()
    wait_for(lambda: str(missing) in policy.output(), 10, 'the configure error in the log')


@pytest.mark.slow
def test_inference_in_a_process_drives_the_arm_and_stops_cleanly(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str],
) -> None:
    """``inference_process`` with ``control_priority`` (refused → a warning, never a fault):
    commands flow; Ctrl-C (SIGINT to the node) ends node and child with exit 0, no traceback."""
    sim, policy, command = start_pair(launch_node, names, sim_run, policy_params={
        'inference_process': True, 'control_priority': 10})
    probe.record('command', JointTrajectory, command)
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    wait_for_state(probe, names['policy'], 'disabled', procs=(sim, policy))
    assert probe.call(SetBool, f'/{names["policy"]}/enable', SetBool.Request(data=True)).success
    wait_for(lambda: len(probe.recorded.get('command')) >= 10, 60, 'commands after enable')
    diag = wait_for_state(probe, names['policy'], 'running', timeout=30)
    assert float(diag['inference_ms.p50']) > 0
    assert policy.stop() == 0, policy.output()[-3000:]
    assert 'Traceback' not in policy.output()
