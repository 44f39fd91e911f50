"""Synthetic datasets carry a robot profile the validator accepts, so their policies serve."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bag_tools.dataset import Dataset
from bag_tools.profile import RobotProfile
from ptr_core.inference import PolicyRunner
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.trainer import train


def test_the_manifest_profile_validates_and_matches_the_entry(tmp_path: Path) -> None:
    ds = make_synthetic_dataset(tmp_path / 'ds', robot='arm', episodes=2, length=8, state_dim=3,
                                action_dim=2, cameras=('front',), image_size=(16, 20))
    entry = ds.manifest['robots']['arm']
    profile = RobotProfile.from_dict(entry['profile'], source='manifest')
    assert profile.state_names == entry['state_names']
    assert profile.action_names == entry['action_names'] == ['arm_cmd0', 'arm_cmd1']
    assert list(profile.image_size) == entry['image_size'] == [16, 20]
    assert profile.camera_roles == entry['camera_roles'] == ['front']


def test_a_policy_trained_on_synthetic_data_serves(
    image_dataset: Path, tmp_path: Path, tiny_config  # type: ignore[no-untyped-def]
) -> None:
    """The node's path: runner from the checkpoint, the robot's profile validated from the
    checkpoint, then one inference on frames at the profile's size."""
    result = train(tiny_config(image_dataset, tmp_path / 'run', 'steps=2'))
    assert result.final is not None
    runner = PolicyRunner.from_checkpoint(result.final)
    for robot in runner.robots:
        profile = RobotProfile.from_dict(runner.profile(robot)['profile'], source=robot)
        h, w = profile.image_size
        to = runner.obs_horizon
        state = np.zeros((to, len(profile.state_names)), np.float32)
        images = {c.role: np.zeros((to, h, w, 3), np.uint8) for c in profile.cameras}
        chunk = runner.infer(state, images, robot)
        assert chunk.shape == (runner.chunk_length, len(profile.action_names))
        assert np.isfinite(chunk).all()
    assert sorted(runner.robots) == sorted(Dataset.open(image_dataset).manifest['robots'])
