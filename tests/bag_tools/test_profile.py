"""Robot profiles: the shipped ones load, round-trip, and bad ones name file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from armbags import arm_profile

from bag_tools.errors import ProfileError
from bag_tools.profile import ActionSource, RobotProfile, load_profile


def test_shipped_profiles_load_and_round_trip(repo_root: Path) -> None:
    files = sorted((repo_root / 'config' / 'robots').glob('*.yaml'))
    profiles = {f.stem: load_profile(f) for f in files}
    for name in ('pr2_left_arm', 'deepen_arm3', 'ur5e_two_cam', 'panda_rgbd'):
        assert name in profiles
    for path, p in zip(files, profiles.values()):
        assert RobotProfile.from_dict(p.to_dict(), source='copy') == p, path
    shapes = {(len(p.joints), tuple(p.camera_roles)) for p in profiles.values()}
    assert len(shapes) >= 4  # differently shaped robots
    ur5e = profiles['ur5e_two_cam']
    assert ur5e.camera_roles == ['front', 'wrist']
    assert ur5e.state_names[6:] == ['wrench.force.x', 'wrench.force.y', 'wrench.force.z',
                                    'wrench.torque.x', 'wrench.torque.y', 'wrench.torque.z']
    panda = profiles['panda_rgbd']
    assert panda.camera('head_depth').depth
    assert panda.state_names[-7:-4] == ['object_pose.position.x', 'object_pose.position.y',
                                        'object_pose.position.z']
    assert profiles['pr2_left_arm'].action.source is ActionSource.NEXT_STATE
    assert profiles['pr2_left_arm'].action_names == list(profiles['pr2_left_arm'].joints)


def test_defaults_are_filled_in() -> None:
    p = RobotProfile.from_dict(arm_profile(), source='x')
    d = p.to_dict()
    assert d['episodes'] == {'marker_topic': None, 'max_gap_s': 1.0}
    assert d['image_tolerance_s'] == 0.2
    assert d['action'] == {'source': 'command', 'topic': '/arm/joint_trajectory',
                           'names': ['j1', 'j2', 'j3']}
    assert p.period_ns == 100_000_000
    assert p.topics() == ['/joint_states', '/arm/joint_trajectory', '/cam/image_raw/compressed']


@pytest.mark.parametrize(('change', 'key', 'problem'), [
    ({'colour': 'red'}, 'colour', 'unknown key'),
    ({'joints': None}, 'joints', 'non-empty list'),
    ({'joints': ['a', 'a', 'b']}, 'joints', "duplicate names \\['a'\\]"),
    ({'rate_hz': 0}, 'rate_hz', 'must be > 0'),
    ({'rate_hz': 'fast'}, 'rate_hz', 'expected a number'),
    ({'state_topic': 'joint_states'}, 'state_topic', 'absolute topic name'),
    ({'action': {'source': 'teleop'}}, 'action.source', 'command or next_state'),
    ({'action': {'source': 'command'}}, 'action.topic', 'required when action.source'),
    ({'action': {'source': 'command', 'topic': '/c', 'gain': 2}}, 'action.gain', 'unknown key'),
    ({'joint_limits': {'lower': [0, 0], 'upper': [1, 1, 1]}}, 'joint_limits.lower',
     'list of 3 numbers'),
    ({'joint_limits': {'lower': [2, 0, 0], 'upper': [1, 1, 1]}}, r'joint_limits.lower\[0\]',
     'greater than the upper'),
    ({'cameras': {'wrist': {'topic': '/c', 'fps': 30}}}, 'cameras.wrist.fps', 'unknown key'),
    ({'cameras': {'wrist': {}}}, 'cameras.wrist.topic', 'missing'),
    ({'image_size': [96]}, 'image_size', r'expected \[H, W\]'),
    ({'extra_state': [{'topic': '/o', 'type': 'sensor_msgs/Imu'}]}, r'extra_state\[0\].type',
     'unsupported type'),
    ({'episodes': {'max_gap': 1}}, 'episodes.max_gap', 'unknown key'),
    ({'min_episode_steps': 0}, 'min_episode_steps', 'positive integer'),
    ({'extra_state': [{'topic': '/g', 'type': 'sensor_msgs/JointState'}]},
     r'extra_state\[0\].joints', 'non-empty list'),
    ({'extra_state': [{'topic': '/g', 'type': 'sensor_msgs/JointState', 'joints': ['j2']}]},
     r'extra_state\[0\].joints', "'j2'.* already in the state"),
    ({'extra_state': [{'topic': '/p', 'type': 'geometry_msgs/Pose', 'joints': ['x']}]},
     r'extra_state\[0\].joints', 'only for sensor_msgs/msg/JointState'),
])
def test_errors_name_file_and_key(
    tmp_path: Path, change: dict[str, Any], key: str, problem: str
) -> None:
    import yaml

    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(arm_profile(**change)))
    with pytest.raises(ProfileError, match=rf'^{path}: key {key}: .*{problem}') as info:
        load_profile(path)
    assert '\n' not in str(info.value)


def test_missing_required_key_and_bad_yaml(tmp_path: Path) -> None:
    d = arm_profile()
    del d['state_topic']
    with pytest.raises(ProfileError, match='key state_topic: missing'):
        RobotProfile.from_dict(d, source='p.yaml')
    bad = tmp_path / 'broken.yaml'
    bad.write_text('robot: [unclosed\n')
    with pytest.raises(ProfileError, match=r'broken\.yaml: not valid YAML'):
        load_profile(bad)
    with pytest.raises(ProfileError, match='cannot read robot profile'):
        load_profile(tmp_path / 'absent.yaml')


def test_msgtype_spellings_and_extra_names() -> None:
    p = RobotProfile.from_dict(arm_profile(extra_state=[
        {'topic': '/object_pose', 'type': 'geometry_msgs/PoseStamped'},
        {'topic': '/ft/wrench', 'type': 'geometry_msgs/msg/WrenchStamped'},
    ]), source='x')
    assert [e.type for e in p.extra_state] == ['geometry_msgs/msg/PoseStamped',
                                               'geometry_msgs/msg/WrenchStamped']
    assert len(p.state_names) == 3 + 7 + 6
    assert p.state_names[3] == 'object_pose.position.x'
    assert p.state_names[-1] == 'ft_wrench.torque.z'


def test_min_episode_steps_old_key_loads_with_warning_and_both_are_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import yaml

    # the new key round-trips through to_dict/from_dict
    new = RobotProfile.from_dict(arm_profile(min_episode_steps=5), source='new')
    assert new.min_episode_steps == 5
    d = new.to_dict()
    assert d['min_episode_steps'] == 5
    assert 'chunk_length' not in d
    assert RobotProfile.from_dict(d, source='copy') == new

    # a profile written before the rename (YAML, or a checkpoint's stored dict) still loads
    old = arm_profile(chunk_length=5)
    del old['min_episode_steps']
    path = tmp_path / 'old.yaml'
    path.write_text(yaml.safe_dump(old))
    with caplog.at_level('WARNING', logger='bag_tools.profile'):
        loaded = load_profile(path)
        again = load_profile(path)
        stored = RobotProfile.from_dict(old, source='ckpt-old')
    assert loaded == again == stored == new
    warnings = [r.getMessage() for r in caplog.records if 'renamed' in r.getMessage()]
    assert len(warnings) == 2  # once per source: the file, the stored dict
    assert f'{path}: key chunk_length was renamed to min_episode_steps' in warnings[0]

    # both keys: one line naming both
    with pytest.raises(ProfileError) as err:
        RobotProfile.from_dict(arm_profile(chunk_length=5), source='both')
    message = str(err.value)
    assert '\n' not in message
    assert message.startswith('both: keys chunk_length and min_episode_steps: both set')
