"""Ingestion of the recorded bags in ../shared/data/bags (skipped where they are absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bag_tools.dataset import Dataset
from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import ImageDecodeError, IngestError
from bag_tools.ingest import BagStatus, ingest
from bag_tools.profile import RobotProfile, load_profile

TRIO = 'third_party_synthetic/deepen_grade'


def test_pr2_left_arm(shared_bags: Path, repo_root: Path, tmp_path: Path) -> None:
    profile = load_profile(repo_root / 'config/robots/pr2_left_arm.yaml')
    bag = shared_bags / 'real/pr2_pr1012_sensors.bag'
    result = ingest([bag], profile, tmp_path / 'ds')
    assert result.bags[0].status is BagStatus.OK, result.bags[0].reason
    (ep,) = Dataset.open(tmp_path / 'ds').episodes()
    assert ep.state.shape == (135, 8)  # 13.4 s at 10 Hz, 8 left-arm joints
    assert ep.action.shape == (135, 8)
    # the first grid step is the first message: its left-arm joints, picked by name from 45
    # joints published in another order (r_ arm first, l_upper_arm_roll before l_shoulder_pan)
    np.testing.assert_allclose(
        ep.state[0], [0.844, 0.749, 1.212, -2.091, -0.383, -0.089, 0.524, 0.086], atol=6e-4)
    assert ep.state_valid.all()
    np.testing.assert_array_equal(ep.action[:-1], ep.state[1:])
    (rep,) = ep.sync_report['topics']
    assert rep['topic'] == '/joint_states'
    assert rep['rate_hz'] == pytest.approx(98.5, abs=1.0)
    assert rep['clock'] == 'header'
    assert rep['max_offset_s'] < 0.011  # within half a ~10 ms period
    stats = Dataset.open(tmp_path / 'ds').manifest['stats']['pr2_left_arm']['state']
    assert stats['count'] == 135


def test_third_party_trio_gives_the_same_arrays(shared_bags: Path, repo_root: Path) -> None:
    profile = load_profile(repo_root / 'config/robots/deepen_arm3.yaml')
    names = ['sample_ros1.bag', 'sample_ros2', 'sample.mcap']
    eps = [bag_to_episodes(shared_bags / TRIO / n, profile) for n in names]
    assert [len(e) for e in eps] == [1, 1, 1]
    first = eps[0][0]
    assert first.state.shape == (100, 4)  # 3 joints + the gripper's own JointState topic
    assert first.action.shape == (100, 3)
    for (other,) in eps[1:]:
        np.testing.assert_array_equal(other.timestamp, first.timestamp)
        np.testing.assert_array_equal(other.state, first.state)
        np.testing.assert_array_equal(other.action, first.action)
    # header stamps are all zero in the .bag and .db3 and absent in the .mcap: log time
    assert {r['clock'] for (e,) in eps for r in e.sync_report['topics']} == {'log'}
    np.testing.assert_allclose(first.state[0], [0.0, -1.0, 0.5, 0.0])
    np.testing.assert_allclose(first.state[1, 3], 0.05128205, atol=1e-6)  # 2nd gripper sample
    np.testing.assert_allclose(first.action[0], [0.0012573, -1.00132105, 0.50640423], atol=1e-6)


def test_third_party_placeholder_images_are_refused(shared_bags: Path, repo_root: Path) -> None:
    d = load_profile(repo_root / 'config/robots/deepen_arm3.yaml').to_dict()
    d['cameras'] = {'front': {'topic': '/camera/image_raw'}}
    d['image_size'] = [64, 64]
    profile = RobotProfile.from_dict(d, source='deepen_with_camera')
    for name in ('sample_ros1.bag', 'sample.mcap'):
        with pytest.raises(ImageDecodeError, match=r'topic /camera/image_raw: CompressedImage '
                                                   r'format .*neither JPEG nor PNG') as info:
            bag_to_episodes(shared_bags / TRIO / name, profile)
        assert str(shared_bags / TRIO / name) in str(info.value)
    with pytest.raises(IngestError, match=r'sample_ros2: topic /camera/image_raw: not in the bag'):
        bag_to_episodes(shared_bags / TRIO / 'sample_ros2', profile)


def test_fetch_relative_topic_and_sparse_poses(shared_bags: Path) -> None:
    """The Fetch bag stores `calibration_joint_states` without a leading slash and holds 61
    poses over 10 minutes: the profile's absolute name matches; the gaps leave no episode."""
    joints = ['shoulder_pan_joint', 'shoulder_lift_joint', 'upperarm_roll_joint',
              'elbow_flex_joint', 'forearm_roll_joint', 'wrist_flex_joint', 'wrist_roll_joint']
    d = {'robot': 'fetch_arm', 'joints': joints, 'state_topic': '/calibration_joint_states',
         'action': {'source': 'next_state'}, 'rate_hz': 10.0,
         'joint_limits': {'lower': [-7.0] * 7, 'upper': [7.0] * 7}}
    bag = shared_bags / 'real/fetch_calibration_poses.bag'
    with pytest.raises(IngestError, match=r'/calibration_joint_states: too short: '
                                          r'1 grid steps'):
        bag_to_episodes(bag, RobotProfile.from_dict(d, source='fetch'))
    d['episodes'] = {'max_gap_s': 60.0}  # accept the sparse stream as one episode
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(d, source='fetch'))
    (rep,) = ep.sync_report['topics']
    assert rep['topic'] == 'calibration_joint_states'
    assert rep['max_gap_s'] == pytest.approx(38.17, abs=0.01)
    assert rep['rate_hz'] < 0.1
    assert ep.state_valid.all()
