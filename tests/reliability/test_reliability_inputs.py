"""Issue 30, items 3, 8 and 12: absurd profile values refused before anything is allocated, a
malformed JointState refused by the node, and an ``OSError`` of any command as one line."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bag_tools.errors import ProfileError
from bag_tools.profile import RobotProfile
from ptr_cli.main import main

ARM = {'joints': ['j1', 'j2'], 'state_topic': '/robot/joint_states',
       'action': {'source': 'next_state'}, 'joint_limits': {'lower': [-1, -1], 'upper': [1, 1]}}


def profile(**over: Any) -> dict[str, Any]:
    return {'robot': 'r', 'rate_hz': 10.0, **ARM, **over}


@pytest.mark.parametrize('rate', [1e9, 1001.0])
def test_an_absurd_rate_is_refused_before_any_allocation(rate: float) -> None:
    """Before: ``rate_hz: 1e9`` reached 21 GB and set off the OOM killer."""
    with pytest.raises(ProfileError, match=r'rate_hz.*above the 1000 Hz'):
        RobotProfile.from_dict(profile(rate_hz=rate))
    assert RobotProfile.from_dict(profile(rate_hz=1000.0)).rate_hz == 1000.0


def test_an_absurd_rate_stops_ingest_in_one_line_within_bounded_memory(tmp_path: Path) -> None:
    """The whole command, in a process capped at 2 GB: one line, exit 2, no growth."""
    prof = tmp_path / 'fast.yaml'
    prof.write_text('robot: r\nrate_hz: 1.0e9\njoints: [j1]\nstate_topic: /js\n'
                    'action: {source: next_state}\njoint_limits: {lower: [-1], upper: [1]}\n')
    code = ('import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); '
            'from ptr_cli.main import main; sys.exit(main(sys.argv[1:]))')
    res = subprocess.run([sys.executable, '-c', code, 'ingest', str(tmp_path), '--profile',
                          str(prof), '--out', str(tmp_path / 'out')],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert 'rate_hz' in res.stderr
    assert 'Traceback' not in res.stderr
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 2 << 20  # KiB: < 2 GB


def test_two_groups_reading_the_same_joints_of_one_topic_are_refused() -> None:
    arms = {'left': dict(ARM), 'right': dict(ARM)}
    with pytest.raises(ProfileError, match=r"arms\.right\.joints.*\['j1', 'j2'\].*arms\.left"):
        RobotProfile.from_dict({'robot': 'r', 'rate_hz': 10.0, 'arms': arms})
    # the same joint names on two topics are two arms (the bimanual profiles): accepted
    arms['right'] = {**ARM, 'state_topic': '/right/joint_states'}
    assert len(RobotProfile.from_dict({'robot': 'r', 'rate_hz': 10.0, 'arms': arms}).groups) == 2


@pytest.mark.parametrize(('names', 'positions', 'why'), [
    (['j1', 'j2'], [0.1, 0.2, 0.3], '3 positions for 2 names'),
    (['j1', 'j2'], [0.1], '1 positions for 2 names'),
    (['j1', 'j1', 'j2'], [0.1, 0.9, 0.2], "repeated: \\['j1'\\]"),
])
def test_a_malformed_joint_state_is_rejected_by_the_node(
    names: list[str], positions: list[float], why: str,
) -> None:
    pytest.importorskip('rclpy', reason='rclpy not installed')
    from sensor_msgs.msg import JointState

    from ptr_ros.safety import RejectedMessageError, check_joint_states

    msg = JointState(name=names, position=positions)
    with pytest.raises(RejectedMessageError, match=why):
        check_joint_states(msg, ['j1', 'j2'])


def test_an_os_error_is_one_line_naming_the_path(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """/proc refuses a new folder even to root: a real failing write."""
    prof = tmp_path / 'p.yaml'
    prof.write_text('robot: r\nrate_hz: 10\njoints: [j1]\nstate_topic: /js\n'
                    'action: {source: next_state}\njoint_limits: {lower: [-1], upper: [1]}\n')
    (tmp_path / 'bags').mkdir()
    assert main(['ingest', str(tmp_path / 'bags'), '--profile', str(prof),
                 '--out', '/proc/ptr-no-such/out']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert '/proc/ptr-no-such' in err[0]
