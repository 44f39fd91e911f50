"""ptr datasets out as LeRobot v3.0 and back: a structural check of every file, the trust and
sync columns, LeRobot's file-size limits, and the round trip bags -> ingest -> export -> ingest."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from armbags import arm_content, arm_profile
from bagfactory import write_bag
from camerabags import H, W, camera_dataset, trust_for

from bag_tools.dataset import Dataset
from bag_tools.ingest import ingest
from bag_tools.lerobot import LeRobotError
from bag_tools.lerobot.exporter import ExportConfig, export_lerobot
from bag_tools.lerobot.importer import import_lerobot
from bag_tools.profile import RobotProfile
from bag_tools.trust import TrustError
from ptr_cli.main import main

#: libx264 at crf 18, yuv420p: measured 44.4 dB on the flat wrist frames and 31.7 dB on the
#: colorful 24x32 top frames (4:2:0 chroma halves their color resolution); docs/lerobot.md
MIN_PSNR_DB = 28.0


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return camera_dataset(tmp_path_factory.mktemp('bags'))


@pytest.fixture(scope='module')
def trust_file(dataset: Path) -> Path:
    return trust_for(dataset)


@pytest.fixture(scope='module')
def exported(dataset: Path, trust_file: Path) -> Path:
    out = dataset.parent / 'lerobot'
    export_lerobot(dataset, out, trust=trust_file)
    return out


def _mp4_frames(path: Path) -> tuple[int, str, tuple[int, int]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, s.codec_context.name, (s.height, s.width)


def check_v3(root: Path) -> dict[str, Any]:
    """Structural check of a LeRobot v3.0 folder: every file info.json implies, consistent."""
    info = json.loads((root / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0'
    for key in ('robot_type', 'fps', 'features', 'total_episodes', 'total_frames', 'total_tasks',
                'chunks_size', 'data_files_size_in_mb', 'video_files_size_in_mb', 'data_path',
                'video_path', 'splits'):
        assert key in info, key
    feats = info['features']
    for key in ('observation.state', 'action', 'timestamp', 'frame_index', 'episode_index',
                'index', 'task_index'):
        assert key in feats, key
    for key, f in feats.items():
        assert {'dtype', 'shape', 'names'} <= set(f), key
        assert f['dtype'] in ('float32', 'int64', 'bool', 'video', 'image', 'string'), key
    videos = [k for k, f in feats.items() if f['dtype'] == 'video']
    assert all(k.startswith('observation.images.') for k in videos)
    # tasks
    tasks = pq.read_table(root / 'meta/tasks.parquet')
    assert tasks.column_names == ['task_index', '__index_level_0__']
    assert json.loads(tasks.schema.metadata[b'pandas'])['index_columns'] == ['__index_level_0__']
    assert tasks.num_rows == info['total_tasks']
    # episodes
    ep_files = sorted((root / 'meta/episodes').glob('chunk-*/file-*.parquet'))
    assert ep_files
    episodes = pa.concat_tables([pq.read_table(f) for f in ep_files]).to_pylist()
    assert len(episodes) == info['total_episodes']
    assert [e['episode_index'] for e in episodes] == list(range(len(episodes)))
    start = 0
    for e in episodes:
        assert e['dataset_from_index'] == start
        assert e['dataset_to_index'] == start + e['length']
        start = e['dataset_to_index']
        for stat in ('min', 'max', 'mean', 'std', 'count'):
            assert f'stats/observation.state/{stat}' in e
    assert start == info['total_frames']
    # data files: the rows each episode points at are there, in order
    data_cols = [k for k, f in feats.items() if f['dtype'] != 'video']
    rows = 0
    for e in episodes:
        file = root / info['data_path'].format(chunk_index=e['data/chunk_index'],
                                               file_index=e['data/file_index'])
        t = pq.read_table(file)
        assert sorted(t.column_names) == sorted(data_cols)
        assert pa.types.is_fixed_size_list(t.schema.field('observation.state').type)
        assert t.schema.field('observation.state').type.list_size == feats[
            'observation.state']['shape'][0]
        mine = t.filter(pa.compute.equal(t.column('episode_index'), e['episode_index']))
        assert mine.num_rows == e['length']
        idx = mine.column('index').to_numpy()
        np.testing.assert_array_equal(idx, np.arange(e['dataset_from_index'],
                                                     e['dataset_to_index']))
        np.testing.assert_array_equal(mine.column('frame_index').to_numpy(),
                                      np.arange(e['length']))
        np.testing.assert_allclose(mine.column('timestamp').to_numpy(),
                                   np.arange(e['length']) / info['fps'], atol=1e-6)
        rows += mine.num_rows
    assert rows == info['total_frames']
    # videos: each file holds its episodes' frames back to back
    for key in videos:
        per_file: dict[Path, int] = {}
        for e in episodes:
            file = root / info['video_path'].format(video_key=key,
                                                    chunk_index=e[f'videos/{key}/chunk_index'],
                                                    file_index=e[f'videos/{key}/file_index'])
            assert e[f'videos/{key}/to_timestamp'] - e[f'videos/{key}/from_timestamp'] == \
                pytest.approx(e['length'] / info['fps'])
            per_file[file] = per_file.get(file, 0) + e['length']
        for file, frames in per_file.items():
            n, _, (h, w) = _mp4_frames(file)
            assert n == frames, file
            assert [h, w] == feats[key]['shape'][:2]
    # stats
    stats = json.loads((root / 'meta/stats.json').read_text())
    assert stats['observation.state']['count'] == [info['total_frames']]
    for key in ('observation.state', 'action', *videos):
        assert {'min', 'max', 'mean', 'std', 'count'} <= set(stats[key]), key
    return {'info': info, 'episodes': episodes}


def test_structure_trust_and_sync_columns(dataset: Path, exported: Path,
                                          trust_file: Path) -> None:
    got = check_v3(exported)
    info, episodes = got['info'], got['episodes']
    ds = Dataset.open(dataset)
    robot = ds.manifest['robots']['arm3']
    assert info['fps'] == 10
    assert info['robot_type'] == 'arm3'
    assert info['features']['observation.state']['names'] == robot['state_names']
    assert info['features']['action']['names'] == robot['action_names']
    top = info['features']['observation.images.top']
    assert top['dtype'] == 'video'
    assert top['shape'] == [H, W, 3]
    assert top['info']['video.codec'] == 'h264'
    depth = info['features']['observation.images.depth']
    assert depth['dtype'] == 'image'
    assert depth['info']['is_depth_map'] is True
    assert sorted(p.name for p in (exported / 'videos').iterdir()) == [
        'observation.images.top', 'observation.images.wrist']
    trust = json.loads(trust_file.read_text())
    by_id = {e['episode_id']: e for e in trust['episodes']}
    table = pq.read_table(exported / 'data/chunk-000/file-000.parquet')
    for e in episodes:
        ep = ds.episode(e['ptr/episode_id'])
        assert json.loads(e['ptr/sync_report']) == ep.sync_report
        worst = max(t['max_offset_s'] for t in ep.sync_report['topics'])
        assert e['ptr/worst_sync_offset_s'] == pytest.approx(worst)
        assert e['ptr/trust'] == pytest.approx(by_id[ep.id]['trust'])
        assert json.loads(e['ptr/tags'])['ptr.source'] in ('expert', 'teleop')
        frames = table.filter(pa.compute.equal(table.column('episode_index'),
                                               e['episode_index']))
        np.testing.assert_allclose(frames.column('ptr.trust').to_numpy(),
                                   by_id[ep.id]['frame_trust'], atol=1e-6)
        np.testing.assert_array_equal(frames.column('ptr.timestamp_ns').to_numpy(),
                                      ep.timestamp)
    ptr_meta = json.loads((exported / 'meta/ptr.json').read_text())
    assert ptr_meta['robot']['profile'] == robot['profile']
    assert ptr_meta['trust']['dataset_content_hash'] == trust['datasets'][0]['content_hash']


def test_round_trip_bags_ingest_export_ingest(dataset: Path, exported: Path,
                                              tmp_path: Path) -> None:
    result = import_lerobot(exported, None, tmp_path / 'again')
    assert result.ok, [b.reason for b in result.bags]
    a, b = Dataset.open(dataset), Dataset.open(tmp_path / 'again')
    assert a.episode_ids == b.episode_ids
    assert a.manifest['tasks'] == b.manifest['tasks'] == ['reach a', 'reach b']
    assert a.manifest['robots'] == b.manifest['robots']
    from bag_tools.trust import dataset_content_hash

    assert dataset_content_hash(a) == dataset_content_hash(b)  # the trust file applies again
    for ea, eb in zip(a.episodes(), b.episodes()):
        for name in ('timestamp', 'state', 'action', 'state_valid', 'action_valid'):
            np.testing.assert_array_equal(getattr(ea, name), getattr(eb, name), err_msg=name)
        assert ea.task == eb.task
        assert ea.tags == eb.tags
        assert ea.sync_report == eb.sync_report
        np.testing.assert_array_equal(ea.images['depth'], eb.images['depth'])  # PNG: lossless
        for role in ('wrist', 'top'):
            np.testing.assert_array_equal(ea.image_valid[role], eb.image_valid[role])
            x = np.asarray(ea.images[role], np.float64)
            y = np.asarray(eb.images[role], np.float64)
            psnr = 10 * np.log10(255.0 ** 2 / max(np.mean((x - y) ** 2), 1e-12))
            assert psnr > MIN_PSNR_DB, (role, psnr)


def test_file_size_limits_roll_files_and_chunks(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / 'small'
    cfg = ExportConfig(chunks_size=1, data_files_size_in_mb=1e-6, video_files_size_in_mb=1e-6)
    export_lerobot(dataset, out, config=cfg)
    got = check_v3(out)
    # every file is full after one episode: one file per episode, one chunk per file
    assert sorted(str(p.relative_to(out)) for p in out.glob('data/*/*.parquet')) == [
        'data/chunk-000/file-000.parquet', 'data/chunk-001/file-000.parquet']
    assert len(list(out.glob('videos/observation.images.top/*/*.mp4'))) == 2
    assert [e['data/chunk_index'] for e in got['episodes']] == [0, 1]
    again = import_lerobot(out, None, tmp_path / 'again')
    assert again.ok
    for ea, eb in zip(Dataset.open(dataset).episodes(), Dataset.open(tmp_path / 'again')
                      .episodes()):
        np.testing.assert_array_equal(ea.state, eb.state)


def test_atomic_and_refusals(dataset: Path, tmp_path: Path, trust_file: Path) -> None:
    out = tmp_path / 'x'
    out.mkdir()
    with pytest.raises(LeRobotError, match='exists'):
        export_lerobot(dataset, out)
    # a trust file of other content is refused, and nothing is left behind
    stale = json.loads(trust_file.read_text())
    stale['datasets'][0]['content_hash'] = 'f' * 64
    for e in stale['episodes']:
        e['dataset_hash'] = 'f' * 64
    bad = tmp_path / 'stale.trust.json'
    bad.write_text(json.dumps(stale))
    with pytest.raises(TrustError, match='stale'):
        export_lerobot(dataset, tmp_path / 'y', trust=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['stale.trust.json', 'x']


def test_cli_export(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(['export', str(dataset), '--format', 'lerobot', '--out', str(tmp_path / 'l'),
                 '--no-progress'])
    assert code == 0
    assert '2 episode(s)' in capsys.readouterr().out
    check_v3(tmp_path / 'l')


@pytest.mark.skipif(importlib.util.find_spec('lerobot') is None,
                    reason='lerobot is not installed (it needs Python >= 3.12 and an older torch '
                           'than this environment has)')
def test_lerobot_loads_the_export(exported: Path) -> None:  # pragma: no cover - not here
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset('local/ptr_export', root=exported)
    info = json.loads((exported / 'meta/info.json').read_text())
    assert ds.num_episodes == info['total_episodes']
    assert ds.num_frames == info['total_frames']
    item = ds[0]
    assert tuple(item['observation.state'].shape) == (info['features']['observation.state'][
        'shape'][0],)


def test_one_robot_per_export(tmp_path: Path) -> None:
    ds = camera_dataset(tmp_path, episodes=1)
    bag = write_bag(arm_content(camera=False), tmp_path / 'state_only', 'mcap')
    other = RobotProfile.from_dict(arm_profile(robot='arm3b', cameras={}, image_size=None),
                                   source='b')
    assert ingest([bag], other, ds).ok
    with pytest.raises(LeRobotError, match=r"holds robots \['arm3', 'arm3b'\].*--robot"):
        export_lerobot(ds, tmp_path / 'x')
    export_lerobot(ds, tmp_path / 'b', robot='arm3b')
    got = check_v3(tmp_path / 'b')
    assert got['info']['robot_type'] == 'arm3b'
    assert got['info']['video_path'] is None  # no camera, no videos folder
    assert not (tmp_path / 'b' / 'videos').exists()
    assert len(got['episodes']) == 1


def test_tampered_ptr_columns_fail_one_episode_each(exported: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / 'copy'
    shutil.copytree(exported, copy)
    file = copy / 'meta/episodes/chunk-000/file-000.parquet'
    rows = pq.read_table(file).to_pylist()
    rows[0]['ptr/sync_report'] = '{not json'
    rows[1]['ptr/episode_id'] = '../escape'
    pq.write_table(pa.Table.from_pylist(rows), file)
    result = import_lerobot(copy, None, tmp_path / 'ds')
    first, second = result.bags
    assert 'column ptr/sync_report of meta/episodes is not valid JSON' in first.reason
    assert "episode id '../escape' contains a path separator" in second.reason
    assert not (tmp_path / 'escape').exists()
