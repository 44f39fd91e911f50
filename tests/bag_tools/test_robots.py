"""A robot's record is its profile: the manifest stores it alone, readers get the rest derived;
robots trained together share one image size (one check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bag_tools.dataset import Dataset, EpisodeData, write_episode
from bag_tools.errors import DatasetError
from bag_tools.profile import RobotProfile
from bag_tools.robots import read_robot, robot_entry, robot_record, shared_image_size


def _profile(robot: str = 'arm', size: list[int] | None = None) -> RobotProfile:
    spec: dict[str, Any] = {
        'robot': robot, 'joints': ['a', 'b'], 'state_topic': '/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0,
        'joint_limits': {'lower': [-1, -2], 'upper': [1, 2]},
    }
    if size is not None:
        spec.update(cameras={'front': {'topic': '/front'}, 'depth': {'topic': '/d',
                                                                     'depth': True}},
                    image_size=size)
    return RobotProfile.from_dict(spec, source=robot)


def test_the_entry_is_derived_from_the_profile() -> None:
    entry = robot_entry(_profile(size=[6, 8]))
    assert entry['state_names'] == ['a', 'b']
    assert entry['joint_lower'] == [-1.0, -2.0]
    assert entry['camera_roles'] == ['depth', 'front']
    assert entry['image_size'] == [6, 8]
    assert entry['image_channels'] == {'front': 3, 'depth': 1}
    assert entry['image_dtypes'] == {'front': 'uint8', 'depth': 'uint16'}
    assert robot_record(entry) == {'profile': entry['profile']}
    assert read_robot(robot_record(entry), where='m') == entry


def test_copies_beside_the_profile_are_not_read() -> None:
    entry = robot_entry(_profile(size=[6, 8]))
    old = {**entry, 'image_size': [1, 1], 'state_names': ['x']}  # an older writer's copies
    assert read_robot(old, where='m') == entry


@pytest.mark.parametrize(('record', 'want'), [
    ({'state_names': ['a']}, r"^m\.json: robot 'arm': expected a mapping \{\"profile\": \.\.\.\}"),
    ('arm', r"^m\.json: robot 'arm': expected a mapping"),
    ({'profile': {'robot': 'arm'}}, r"^m\.json: robot 'arm': profile: key rate_hz: missing"),
])
def test_a_bad_record_is_one_line_naming_the_robot(record: Any, want: str) -> None:
    with pytest.raises(DatasetError, match=want):
        read_robot(record, where="m.json: robot 'arm'")


def test_robots_trained_together_share_one_image_size() -> None:
    arm, cam = robot_entry(_profile('arm')), robot_entry(_profile('cam', [6, 8]))
    assert shared_image_size({'arm': arm}, where='x') == (0, 0)  # no camera, no size
    assert shared_image_size({'arm': arm, 'cam': cam}, where='x') == (6, 8)
    big = robot_entry(_profile('big', [12, 16]))
    with pytest.raises(DatasetError, match=r'^here: robots trained together share one image '
                                           r'size, these differ \(big \[12, 16\], cam \[6, 8\]\)'):
        shared_image_size({'cam': cam, 'arm': arm, 'big': big}, where='here')


def test_the_manifest_stores_each_robot_as_its_profile(tmp_path: Path) -> None:
    root = tmp_path / 'ds'
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    ep = EpisodeData(
        id='e0', robot='arm', timestamp=np.arange(3, dtype=np.int64),
        state=np.zeros((3, 2), np.float32), action=np.zeros((3, 2), np.float32),
        state_valid=np.ones(3, bool), action_valid=np.ones(3, bool))
    write_episode(root, ep)
    entry = robot_entry(_profile())
    ds.add_episodes([ep], robots={'arm': entry})
    stored = json.loads((root / 'manifest.json').read_text())['robots']
    assert stored == {'arm': {'profile': entry['profile']}}
    assert Dataset.open(root).manifest['robots'] == {'arm': entry}
    assert ds.manifest['robots'] == {'arm': entry}  # the writer's own copy is left whole
