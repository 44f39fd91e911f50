"""An export never writes black video silently (issue 29, "what fails"): an episode whose camera
is invalid (zero images) at a large share of its steps is warned about by episode, camera and
share, and left out over ``max_invalid``; ``meta/ptr.json`` holds the robot's record (its
profile) only, and an export an older ptr wrote (the whole robot entry) imports the same."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from armbags import arm_content, arm_profile
from bagfactory import write_bag, write_video

from bag_tools.dataset import Dataset
from bag_tools.ingest import ingest
from bag_tools.lerobot import LeRobotError
from bag_tools.lerobot.exporter import ExportConfig, export_lerobot
from bag_tools.lerobot.importer import import_lerobot
from bag_tools.profile import RobotProfile
from bag_tools.robots import robot_entry
from ptr_cli.main import main


def _frame(value: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 90
    return img


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 3 s bags with a video beside each: ``full`` covers its bag, ``short`` 0.5 s of it
    (77 % of its camera steps invalid: ingest warns and, without --max-invalid, lands it)."""
    tmp = tmp_path_factory.mktemp('invalid')
    bags = []
    for name, frames in (('full', 46), ('short', 8)):  # 15 fps
        bag = write_bag(arm_content(duration_s=3.0, camera=False), tmp / name, 'mcap')
        write_video(bag / 'left.mp4', [_frame(80)] * frames)
        bags.append(bag)
    profile = RobotProfile.from_dict(arm_profile(
        cameras={'left': {'file': 'left.mp4'}}, image_size=[24, 32]), source='video.yaml')
    assert ingest(bags, profile, tmp / 'ds').ok
    return tmp / 'ds'


def _ids(dataset: Path) -> dict[str, str]:
    """Episode id by bag name."""
    return {Path(e['source']).name: e['id'] for e in Dataset.open(dataset).manifest['episodes']}


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _export(dataset: Path, out: Path, done: list[str] | None = None, **cfg: float) -> list[str]:
    """Export ``dataset`` to ``out`` (the episodes done appended to ``done``); the exporter's
    warning lines."""
    handler = _Lines()
    logger = logging.getLogger('bag_tools.lerobot.exporter')
    logger.addHandler(handler)
    try:
        export_lerobot(dataset, out, config=ExportConfig(**cfg),
                       progress=None if done is None else done.append)
    finally:
        logger.removeHandler(handler)
    return handler.lines


def test_a_mostly_black_camera_leaves_its_episode_out(dataset: Path, tmp_path: Path) -> None:
    ids = _ids(dataset)
    done: list[str] = []
    (line,) = _export(dataset, tmp_path / 'out', done)
    assert sorted(done) == sorted(ids.values())  # a progress bar ends full
    assert line.startswith(f'{dataset}: episode {ids["short"]}: camera left invalid (zero '
                           'images) at 77% of 31 steps, over max_invalid 0.5: left out')
    info = json.loads((tmp_path / 'out/meta/info.json').read_text())
    assert info['total_episodes'] == 1
    back = import_lerobot(tmp_path / 'out', None, tmp_path / 'back')
    assert back.ok
    assert Dataset.open(tmp_path / 'back').episode_ids == [ids['full']]


def test_under_max_invalid_it_is_exported_with_a_warning(dataset: Path, tmp_path: Path) -> None:
    ids = _ids(dataset)
    (line,) = _export(dataset, tmp_path / 'out', max_invalid=1.0)
    assert line == (f'{dataset}: episode {ids["short"]}: camera left invalid (zero images) at '
                    '77% of 31 steps; exported, ptr.image_valid.left marks them')
    back = import_lerobot(tmp_path / 'out', None, tmp_path / 'back')
    assert back.ok
    ep = Dataset.open(tmp_path / 'back').episode(ids['short'])
    assert int(ep.image_valid['left'].sum()) == 7  # the black frames stay marked invalid


def test_nothing_left_to_export_is_one_line(dataset: Path, tmp_path: Path) -> None:
    shutil.copytree(dataset, tmp_path / 'ds')
    Dataset.open(tmp_path / 'ds').remove_episodes([_ids(dataset)['full']])
    with pytest.raises(LeRobotError, match=r"every episode of robot 'arm3' has a camera invalid "
                                           r'at more than max_invalid 0\.5'):
        export_lerobot(tmp_path / 'ds', tmp_path / 'out')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']
    with pytest.raises(LeRobotError, match='max_invalid must be a share between 0 and 1'):
        ExportConfig(max_invalid=1.5)


def test_cli_max_invalid(dataset: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    args = ['export', str(dataset), '--out', str(tmp_path / 'a'), '--no-progress']
    assert main(args) == 0
    out = capsys.readouterr().out
    assert '1 episode(s), 31 frames' in out
    assert '1 left out (invalid cameras)' in out
    assert main([*args[:3], str(tmp_path / 'b'), '--no-progress', '--max-invalid', '1']) == 0
    assert '2 episode(s), 62 frames' in capsys.readouterr().out
    assert main([*args[:3], str(tmp_path / 'c'), '--no-progress', '--max-invalid', '2']) == 2
    assert 'max_invalid must be a share between 0 and 1, got 2.0' in capsys.readouterr().err


def test_ptr_json_holds_the_profile_and_old_exports_import(dataset: Path,
                                                            tmp_path: Path) -> None:
    out = tmp_path / 'out'
    _export(dataset, out, max_invalid=1.0)
    record = Dataset.open(dataset).manifest['robots']['arm3']
    meta = json.loads((out / 'meta/ptr.json').read_text())
    assert meta['robot'] == {'profile': record['profile']}
    # an export an older ptr wrote: the whole robot entry, derived copies beside the profile
    old = tmp_path / 'old'
    shutil.copytree(out, old)
    profile = RobotProfile.from_dict(record['profile'], source='manifest')
    meta['robot'] = {**robot_entry(profile), 'state_names': ['stale copies are not read']}
    (old / 'meta/ptr.json').write_text(json.dumps(meta))
    for name, folder in (('new', out), ('old', old)):
        assert import_lerobot(folder, None, tmp_path / f'ds_{name}').ok
    a, b = Dataset.open(tmp_path / 'ds_new'), Dataset.open(tmp_path / 'ds_old')
    assert a.manifest['robots'] == b.manifest['robots']
    assert a.manifest['robots']['arm3']['profile'] == record['profile']
    assert a.episode_ids == b.episode_ids == Dataset.open(dataset).episode_ids
