"""LeRobot folders into ptr datasets: the two real fixtures in ../shared/data/lerobot and
hand-made messy files (list<float> vs fixed-size lists, stale totals, missing video, MPEG-4)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bag_tools.dataset import Dataset
from bag_tools.errors import ProfileError
from bag_tools.ingest import BagStatus
from bag_tools.lerobot import LeRobotError, load_lerobot_profile
from bag_tools.lerobot.format import feature_names
from bag_tools.lerobot.importer import import_lerobot, parse_episodes
from bag_tools.lerobot.reader import LeRobotSource
from bag_tools.lerobot.video import VideoEncoder
from ptr_cli.main import main

REACHY = 'reachy2_v30_apple_storage'
G1 = 'unitree_g1_v21_bottle'


def test_reachy2_v30_stale_totals_and_missing_video(lerobot_data: Path, tmp_path: Path) -> None:
    src = lerobot_data / REACHY
    result = import_lerobot(src, None, tmp_path / 'ds')
    # (the warnings are logged too; launch_pytest's logger class keeps caplog from seeing them)
    text = '\n'.join([*LeRobotSource.open(src).warnings, *(b.reason for b in result.bags)])
    # info.json claims 14983 frames and a 0:50 split; the data holds 3 episodes, 899 frames
    assert 'total_frames 14983' in text
    assert '899 frames; using the data' in text
    assert 'splits.train "0:50"' in text
    for idx in range(3):
        assert (f'episode {idx}: video file videos/observation.image/chunk-000/file-000.mp4 '
                'is missing') in text
    assert [b.status for b in result.bags] == [BagStatus.OK] * 3
    ds = Dataset.open(tmp_path / 'ds')
    eps = ds.episodes()
    assert [ep.length for ep in eps] == [299, 300, 300]
    robot = ds.manifest['robots']['reachy2']
    assert len(robot['state_names']) == 19
    assert len(robot['action_names']) == 19
    assert robot['state_names'][0] == 'observation.state.0'  # names: null in info.json
    assert ds.manifest['tasks'] == ['place the apple in the plate']
    assert ds.manifest['rate_hz'] == 30.0
    data = pq.read_table(src / 'data/chunk-000/file-000.parquet').to_pydict()
    state = np.asarray(data['observation.state'], np.float32)
    np.testing.assert_array_equal(np.concatenate([ep.state for ep in eps]), state)
    ep0 = eps[0]
    assert ep0.state.dtype == np.float32
    assert ep0.state.shape == (299, 19)
    assert not ep0.image_valid['image'].any()  # the mp4 is absent
    cam = next(r for r in ep0.sync_report['topics'] if r['role'] == 'camera:image')
    assert cam['invalid'] == 299
    assert np.all(np.diff(ep0.timestamp) == round(1e9 / 30))
    # limits from meta/stats.json, as the file says
    stats = json.loads((src / 'meta/stats.json').read_text())
    np.testing.assert_allclose(robot['joint_lower'], stats['observation.state']['min'])


def test_g1_v21_av1_selected_episodes(lerobot_data: Path, tmp_path: Path) -> None:
    src = lerobot_data / G1
    result = import_lerobot(src, None, tmp_path / 'ds', episodes=[1, 2, 3])
    (stale, missing) = LeRobotSource.open(src).warnings
    assert 'total_episodes 100, total_frames 35965' in stale
    assert '98 of 100 listed episode(s) have no data' in missing
    ok = [b for b in result.bags if b.status is BagStatus.OK]
    assert [b.frames for b in ok] == [393, 343]
    (bad,) = [b for b in result.bags if b.status is BagStatus.FAILED]
    assert bad.reason.endswith('episode 3: data file data/chunk-000/episode_000003.parquet '
                               'is missing')
    ds = Dataset.open(tmp_path / 'ds')
    robot = ds.manifest['robots']['unitree_g1_inspire']
    assert len(robot['state_names']) == 26  # nested one level in info.json, flattened
    assert robot['state_names'][:2] == ['kLeftShoulderPitch', 'kLeftShoulderRoll']
    assert robot['camera_roles'] == ['cam_high']
    eps = ds.episodes()
    assert [ep.tags['lerobot.episode_index'] for ep in eps] == [1, 2]
    assert eps[0].tags['lerobot.index_from'] == 479
    assert ds.manifest['tasks'] == ['Pick up the yellow bottle on the table.']
    for ep in eps:
        # every AV1 frame decoded, one per row, at the derived 96x96
        assert ep.images['cam_high'].shape == (ep.length, 96, 96, 3)
        assert ep.image_valid['cam_high'].all()
        cam = next(r for r in ep.sync_report['topics'] if r['role'] == 'camera:cam_high')
        assert cam['messages'] == ep.length
        assert cam['held'] == 0
        assert cam['dropped'] == 0
        assert cam['max_offset_s'] < 1e-4  # LeRobot's own tolerance_s
        assert 30 < ep.images['cam_high'].mean() < 220  # a real picture, not zeros
        # consecutive frames differ a little (a moving robot), never wildly
        diffs = np.abs(np.diff(ep.images['cam_high'][:50].astype(np.int16), axis=0)).mean(
            axis=(1, 2, 3))
        assert diffs.max() < 30
    data = pq.read_table(src / 'data/chunk-000/episode_000002.parquet').to_pydict()
    np.testing.assert_array_equal(eps[1].action, np.asarray(data['action'], np.float32))
    # the same run again: both episodes skipped by content hash
    again = import_lerobot(src, None, tmp_path / 'ds', episodes=[1, 2])
    assert [b.status for b in again.bags] == [BagStatus.SKIPPED] * 2


def test_cli_ingest_g1(lerobot_data: Path, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    code = main(['ingest', str(lerobot_data / G1), '--episodes', '2', '--out',
                 str(tmp_path / 'g1'), '--no-progress'])
    out = capsys.readouterr().out
    assert code == 0, out
    assert '1 episode(s) imported' in out
    assert '343 frames' in out
    code = main(['ingest', str(lerobot_data / G1), '--profile', 'config/robots/ur5e_two_cam.yaml',
                 '--out', str(tmp_path / 'x')])
    assert code == 2
    assert 'a robot profile for bags' in capsys.readouterr().err


def test_parse_episodes() -> None:
    assert parse_episodes('1,2') == [1, 2]
    assert parse_episodes('4-6, 1') == [1, 4, 5, 6]
    with pytest.raises(LeRobotError, match='not an index'):
        parse_episodes('a')


def test_feature_names_shapes() -> None:
    assert feature_names('s', {'shape': [2], 'names': None}) == ['s.0', 's.1']
    assert feature_names('s', {'shape': [2], 'names': [['a', 'b']]}) == ['a', 'b']
    assert feature_names('s', {'shape': [2], 'names': {'motors': ['a', 'b']}}) == ['a', 'b']
    assert feature_names('s', {'shape': [3], 'names': ['a', 'b']}) == ['s.0', 's.1', 's.2']


# -- a hand-made v3.0 folder: fixed-size and variable lists, MPEG-4 video, a profile ---------

def _write_v3(root: Path, *, fixed: bool, codec: str = 'mpeg4', n: int = (20)) -> None:
    (root / 'meta/episodes/chunk-000').mkdir(parents=True)
    (root / 'data/chunk-000').mkdir(parents=True)
    (root / 'videos/observation.images.top/chunk-000').mkdir(parents=True)
    fps = 10
    info = {
        'codebase_version': 'v3.0', 'robot_type': 'toy arm', 'fps': fps, 'total_episodes': 2,
        'total_frames': 2 * n, 'chunks_size': 1000,
        'data_path': 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet',
        'video_path': 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4',
        'features': {
            'observation.state': {'dtype': 'float32', 'shape': [3], 'names': ['a', 'b', 'c']},
            'action': {'dtype': 'float32', 'shape': [2], 'names': None},
            'observation.images.top': {'dtype': 'video', 'shape': [32, 48, 3],
                                       'names': ['height', 'width', 'channel']},
            'timestamp': {'dtype': 'float32', 'shape': [1]},
        },
    }
    (root / 'meta/info.json').write_text(json.dumps(info))
    k = np.arange(2 * n)
    state = np.stack([k, -k, 2 * k], 1).astype(np.float32)
    action = np.stack([k + 0.5, k - 0.5], 1).astype(np.float32)
    list_type = (pa.list_(pa.float32(), 3) if fixed else pa.list_(pa.float32()))
    table = pa.table({
        'observation.state': pa.array(state.tolist(), list_type),
        'action': pa.array(action.tolist(), pa.list_(pa.float32(), 2) if fixed
                           else pa.list_(pa.float32())),
        'timestamp': pa.array((k % n / fps).astype(np.float32)),
        'frame_index': pa.array(k % n), 'episode_index': pa.array(k // n), 'index': pa.array(k),
        'task_index': pa.array(np.zeros(2 * n, np.int64)),
    })
    pq.write_table(table, root / 'data/chunk-000/file-000.parquet')
    pq.write_table(pa.table({'task_index': [0], 'task': ['stack']}), root / 'meta/tasks.parquet')
    pq.write_table(pa.table({
        'episode_index': [0, 1], 'length': [n, n], 'tasks': [['stack'], ['stack']],
        'data/chunk_index': [0, 0], 'data/file_index': [0, 0],
        'videos/observation.images.top/chunk_index': [0, 0],
        'videos/observation.images.top/file_index': [0, 0],
        'videos/observation.images.top/from_timestamp': [0.0, n / fps],
        'videos/observation.images.top/to_timestamp': [n / fps, 2 * n / fps],
    }), root / 'meta/episodes/chunk-000/file-000.parquet')
    enc = VideoEncoder(root / 'videos/observation.images.top/chunk-000/file-000.mp4', fps=fps,
                       width=48, height=32, codec=codec, crf=2)
    for i in range(2 * n):
        frame = np.zeros((32, 48, 3), np.uint8)
        frame[...] = 6 * i  # frame i is gray level 6 i: which frame landed where is visible
        enc.add(frame)
    enc.close()


@pytest.mark.parametrize('fixed', [True, False])
def test_v3_lists_and_mpeg4_frames_land_on_their_rows(tmp_path: Path, fixed: bool) -> None:
    src = tmp_path / 'toy'
    _write_v3(src, fixed=fixed)
    result = import_lerobot(src, None, tmp_path / 'ds')
    assert result.ok, [b.reason for b in result.bags]
    ds = Dataset.open(tmp_path / 'ds')
    assert ds.manifest['robots']['toy_arm']['state_names'] == ['a', 'b', 'c']
    assert ds.manifest['robots']['toy_arm']['action_names'] == ['action.0', 'action.1']
    ep1 = ds.episodes()[1]
    np.testing.assert_array_equal(ep1.state[:, 0], np.arange(20, 40))
    red = ep1.images['top'][..., 0].mean(axis=(1, 2))
    # the second episode starts 2 s into the shared mp4: its row k shows file frame 20 + k
    np.testing.assert_allclose(red, 6 * np.arange(20, 40), atol=2.5)
    assert ds.episodes()[0].task == 'stack'


def test_ragged_list_is_refused_naming_row(tmp_path: Path) -> None:
    src = tmp_path / 'toy'
    _write_v3(src, fixed=False)
    file = src / 'data/chunk-000/file-000.parquet'
    t = pq.read_table(file).to_pydict()
    t['observation.state'][5] = [1.0, 2.0]
    pq.write_table(pa.table(t), file)
    result = import_lerobot(src, None, tmp_path / 'ds', episodes=[0])
    (bad,) = result.bags
    assert bad.status is BagStatus.FAILED
    assert 'column observation.state row 5 has 2 values, info.json says 3' in bad.reason


def test_profile_maps_keys_and_size(tmp_path: Path) -> None:
    src = tmp_path / 'toy'
    _write_v3(src, fixed=True)
    prof = tmp_path / 'toy.yaml'
    prof.write_text('format: lerobot\nrobot: toy\nstate: observation.state\naction: action\n'
                    'cameras: {front: observation.images.top}\nimage_size: [8, 12]\n'
                    'task: override\nmin_episode_steps: 4\n')
    result = import_lerobot(src, load_lerobot_profile(prof), tmp_path / 'ds')
    assert result.ok
    ds = Dataset.open(tmp_path / 'ds')
    ep = ds.episodes()[0]
    assert ep.images['front'].shape == (20, 8, 12, 3)
    assert ep.task == 'override'
    prof.write_text('format: lerobot\nrobot: toy\nstate: observation.state\naction: act\n')
    with pytest.raises(LeRobotError, match="no feature 'act'"):
        import_lerobot(src, load_lerobot_profile(prof), tmp_path / 'ds2')
    prof.write_text('format: lerobot\nrobot: toy\nstate: observation.state\nactions: a\n')
    with pytest.raises(ProfileError, match='key actions: unknown key'):
        load_lerobot_profile(prof)


def test_missing_data_file_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / 'toy'
    _write_v3(src, fixed=True)
    shutil.rmtree(src / 'data')
    source = LeRobotSource.open(src)
    assert source.present == []
    assert source.missing[0].endswith('episode 0: data file data/chunk-000/file-000.parquet '
                                      'is missing')


def test_v3_videos_under_video_not_videos_are_read_there(tmp_path: Path) -> None:
    """info.json says ``videos/``, the files are in ``video/`` (issue 29, item 5): one warning,
    every frame decoded -- not zeros with a "missing" line per episode."""
    src = tmp_path / 'toy'
    _write_v3(src, fixed=True)
    (src / 'videos').rename(src / 'video')
    (warning,) = LeRobotSource.open(src).warnings
    assert warning == (f'{src}: meta/info.json video_path puts the videos under videos/, they '
                       'are under video/ (1 file(s)); reading them there')
    result = import_lerobot(src, None, tmp_path / 'ds')
    assert result.ok, [b.reason for b in result.bags]
    for k, ep in enumerate(Dataset.open(tmp_path / 'ds').episodes()):
        assert ep.image_valid['top'].all()
        red = ep.images['top'][..., 0].mean(axis=(1, 2))
        np.testing.assert_allclose(red, 6 * np.arange(20 * k, 20 * k + 20), atol=2.5)


def test_v21_videos_under_video_are_read_there(lerobot_data: Path, tmp_path: Path) -> None:
    src = tmp_path / 'g1'
    shutil.copytree(lerobot_data / G1 / 'meta', src / 'meta')
    shutil.copytree(lerobot_data / G1 / 'data', src / 'data')
    shutil.copytree(lerobot_data / G1 / 'videos', src / 'video')
    warnings = LeRobotSource.open(src).warnings
    assert sum('are under video/ (2 file(s)); reading them there' in w for w in warnings) == 1
    result = import_lerobot(src, None, tmp_path / 'ds', episodes=[2])
    assert result.ok, [b.reason for b in result.bags]
    (ep,) = Dataset.open(tmp_path / 'ds').episodes()
    assert ep.image_valid['cam_high'].all()
    assert 30 < ep.images['cam_high'].mean() < 220


def test_an_episode_without_its_video_is_warned_about_by_stream(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No video at all: the episode lands (no --max-invalid) but its camera stream, invalid at
    every step, is a warning naming it -- as a bag's would be (issue 29, item 3); with
    ``max_invalid`` the episode fails in one line and nothing of it is written."""
    src = tmp_path / 'toy'
    _write_v3(src, fixed=True)
    shutil.rmtree(src / 'videos')
    with caplog.at_level(logging.WARNING, logger='bag_tools.validity'):
        result = import_lerobot(src, None, tmp_path / 'ds')
    assert result.ok, [b.reason for b in result.bags]
    lines = [r.getMessage() for r in caplog.records if r.name == 'bag_tools.validity']
    assert lines
    assert all('top' in line and '100%' in line for line in lines), lines
    refused = import_lerobot(src, None, tmp_path / 'strict', max_invalid=0.5)
    assert not refused.ok
    assert all('over max_invalid 0.5' in b.reason for b in refused.bags), refused.bags
    assert not (tmp_path / 'strict').exists() or not list(Dataset.open(
        tmp_path / 'strict').episodes())
