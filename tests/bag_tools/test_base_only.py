"""A mobile base alone (issue 29, item 4): state from odometry, poses and TF, action from
``cmd_vel``, no joints -- ingested from a nav2-style bag on simulation time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from navbags import SIM0, SPEED, base_x, held_sim_seconds, nav2_bag

from bag_tools.dataset import Dataset
from bag_tools.errors import ProfileError
from bag_tools.ingest import BagStatus, ingest
from bag_tools.profile import RobotProfile, load_profile


def test_shipped_base_only_profile_ingests_a_nav2_bag(tmp_path: Path, repo_root: Path) -> None:
    profile = load_profile(repo_root / 'config/robots/nav2_base.yaml')
    assert profile.groups == ()
    assert profile.joints == ()
    assert RobotProfile.from_dict(profile.to_dict(), source='resolved') == profile
    bag = nav2_bag(tmp_path)
    result = ingest([bag], profile, tmp_path / 'ds')
    assert result.bags[0].status is BagStatus.OK, result.bags[0].reason
    ds = Dataset.open(tmp_path / 'ds')
    (ep,) = ds.episodes()
    assert ep.state.shape == (33, 13 + 7 + 7)  # odometry, AMCL pose, TF pose
    assert ep.action.shape == (33, 6)  # the Twist
    assert ep.state_valid.all()
    assert ep.action_valid.all()
    names = profile.state_names
    sim_s = (ep.timestamp - SIM0) / 1e9
    want_x = [base_x(t) for t in sim_s]
    for dim in ('odom.pose.position.x', 'amcl.position.x', 'base.position.x'):
        np.testing.assert_allclose(ep.state[:, names.index(dim)], want_x, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ep.state[:, names.index('base.position.z')], 0.1, rtol=1e-6)
    np.testing.assert_allclose(ep.state[:, names.index('odom.twist.linear.x')], SPEED,
                               rtol=1e-6)
    x = profile.action_names.index('cmd_vel.linear.x')
    np.testing.assert_allclose(ep.action[:, x], held_sim_seconds(ep.timestamp), rtol=1e-6)
    robot = ds.manifest['robots']['nav2_base']
    assert robot['profile']['extra_action'][0]['topic'] == '/cmd_vel'
    assert 'joints' not in robot['profile']


@pytest.mark.parametrize('drop', ['extra_state', 'extra_action'])
def test_a_profile_without_joints_needs_extra_state_and_action(drop: str) -> None:
    d: dict[str, Any] = {
        'robot': 'base', 'rate_hz': 10.0,
        'extra_state': [{'topic': '/odom', 'type': 'nav_msgs/msg/Odometry'}],
        'extra_action': [{'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist'}],
    }
    del d[drop]
    with pytest.raises(ProfileError, match=f'key joints: missing .*{drop} is empty'):
        RobotProfile.from_dict(d, source='base.yaml')


def test_a_joint_key_alone_still_asks_for_the_rest() -> None:
    d = {'robot': 'arm', 'rate_hz': 10.0, 'joints': ['a'],
         'extra_state': [{'topic': '/odom', 'type': 'nav_msgs/msg/Odometry'}],
         'extra_action': [{'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist'}]}
    with pytest.raises(ProfileError, match='key state_topic: missing'):
        RobotProfile.from_dict(d, source='arm.yaml')
