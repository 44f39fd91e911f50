"""A dataset and a checkpoint written by an older ptr (``data/old_e80e171``, see its README)
read the same today: the same robot entries, the same training layout, the same actions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bag_tools.dataset import Dataset
from ptr_core.checkpoint import load_checkpoint, read_robots
from ptr_core.inference import PolicyRunner
from ptr_core.layout import unified_layout

OLD = Path(__file__).parent / 'data' / 'old_e80e171'


@pytest.fixture(scope='module')
def expected() -> dict[str, Any]:
    out: dict[str, Any] = json.loads((OLD / 'expected.json').read_text())
    return out


def test_an_old_dataset_reads_the_same(expected: dict[str, Any]) -> None:
    ds = Dataset.open(OLD / 'dataset')
    assert ds.manifest['robots'] == expected['robots']
    assert unified_layout([ds.manifest]).to_json() == expected['layout']
    # the old manifest holds the derived copies; they are not what is read
    stored = json.loads((OLD / 'dataset' / 'manifest.json').read_text())['robots']
    assert 'image_size' in stored['arm']


def test_an_old_dataset_written_again_stores_each_robot_as_its_profile(
        tmp_path: Path, expected: dict[str, Any]) -> None:
    root = tmp_path / 'ds'
    shutil.copytree(OLD / 'dataset', root)
    Dataset.open(root).refresh_stats()  # any write saves the manifest
    stored = json.loads((root / 'manifest.json').read_text())['robots']
    assert stored == {name: {'profile': entry['profile']}
                      for name, entry in expected['robots'].items()}
    again = Dataset.open(root)
    assert again.manifest['robots'] == expected['robots']
    assert unified_layout([again.manifest]).to_json() == expected['layout']


def test_an_old_checkpoint_loads_with_the_same_robots_and_actions(
        expected: dict[str, Any]) -> None:
    ckpt = load_checkpoint(OLD / 'checkpoint')
    # robots.json of then left the image size to the layout: each entry gets it from there
    assert ckpt.robots == expected['checkpoint_robots'] == read_robots(OLD / 'checkpoint')
    assert ckpt.robots['arm']['image_size'] == [6, 8]
    assert ckpt.preprocessor.layout.to_json() == expected['layout']
    runner = PolicyRunner.from_checkpoint(OLD / 'checkpoint')
    arm = expected['inputs']['arm']
    actions = runner.infer(np.asarray(arm['state'], np.float32),
                           {'front': np.asarray(arm['front'], np.uint8)}, 'arm')
    np.testing.assert_allclose(actions, expected['actions']['arm'], rtol=1e-4, atol=1e-5)
    runner = PolicyRunner.from_checkpoint(OLD / 'checkpoint')
    base = runner.infer(np.asarray(expected['inputs']['base']['state'], np.float32), {}, 'base')
    np.testing.assert_allclose(base, expected['actions']['base'], rtol=1e-4, atol=1e-5)
