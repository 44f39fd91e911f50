"""A LeRobot folder is untrusted input: its metadata names no file outside it, evaluates no
format string, sizes nothing without a bound, and every malformed field is one line naming the
file and the field (``ptr ingest`` exits 2), never a traceback or an empty dataset.

Each case copies a real set from ../shared/data/lerobot into ``tmp_path`` and edits it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bag_tools.ingest import BagStatus
from bag_tools.lerobot import LeRobotError
from bag_tools.lerobot.importer import import_lerobot
from ptr_cli.main import main

REACHY = 'reachy2_v30_apple_storage'  # v3.0, 3 episodes, 899 rows, its mp4 absent
G1 = 'unitree_g1_v21_bottle'  # v2.1, episodes 1 and 2 present, AV1 videos
G1_VIDEO = 'videos/chunk-000/observation.images.cam_high/episode_000001.mp4'
V3_DATA = 'data/chunk-000/file-000.parquet'
V3_EPISODES = 'meta/episodes/chunk-000/file-000.parquet'


@pytest.fixture
def reachy(lerobot_data: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(lerobot_data / REACHY, tmp_path / 'reachy'))


@pytest.fixture
def g1(lerobot_data: Path, tmp_path: Path) -> Path:
    """The v2.1 set with episode 1's data only (no videos: the cases fail before decoding)."""
    root = Path(shutil.copytree(lerobot_data / G1 / 'meta', tmp_path / 'g1' / 'meta')).parent
    (root / 'data/chunk-000').mkdir(parents=True)
    shutil.copy(lerobot_data / G1 / 'data/chunk-000/episode_000001.parquet',
                root / 'data/chunk-000')
    return root


def edit_json(file: Path, change: Callable[[Any], Any]) -> None:
    """Change the JSON in ``file`` in place (a change returning a list replaces it)."""
    data = json.loads(file.read_text())
    out = change(data)
    file.write_text(json.dumps(out if isinstance(out, list) else data))


def edit_info(root: Path, **values: Any) -> None:
    edit_json(root / 'meta/info.json', lambda info: info.update(values))


def edit_table(file: Path, change: Callable[[dict[str, list[Any]]], None]) -> None:
    table = pq.read_table(file).to_pydict()
    change(table)
    pq.write_table(pa.table(table), file)


def leftovers(out: Path) -> list[str]:
    """What a run that wrote nothing left: no folder at all (not even the writer lock's)."""
    if not out.exists():
        return []
    return sorted(p.name for p in out.iterdir()) or ['(an empty folder)']


def refused(src: Path, out: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """``ptr ingest src --out out``: exit 2, one error line (returned), no output folder."""
    capsys.readouterr()
    code = main(['ingest', str(src), '--out', str(out), '--no-progress', *args])
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith('ptr ingest: error: ')]
    assert len(lines) == 1, err
    assert leftovers(out) == []
    return lines[0]


# -- paths: nothing outside the folder is read ------------------------------------------------

def test_video_path_outside_the_folder_is_refused(
        lerobot_data: Path, g1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / 'secret'
    secret.mkdir()
    shutil.copy(lerobot_data / G1 / G1_VIDEO, secret / 'private_camera.mp4')
    edit_info(g1, video_path='../secret/private_camera.mp4')
    line = refused(g1, tmp_path / 'out', capsys)
    assert 'meta/info.json: key video_path' in line
    assert f'resolves to {secret / "private_camera.mp4"}, outside the dataset folder' in line


def test_data_path_outside_the_folder_is_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / 'secret'
    secret.mkdir()
    shutil.move(reachy / V3_DATA, secret / 'rows.parquet')  # 899 rows, outside
    edit_info(reachy, data_path='../secret/rows.parquet')
    line = refused(reachy, tmp_path / 'out', capsys)
    assert "meta/info.json: key data_path: '../secret/rows.parquet' resolves to" in line
    assert 'outside the dataset folder' in line


def test_absolute_data_path_is_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / 'rows.parquet'
    shutil.copy(reachy / V3_DATA, outside)
    edit_info(reachy, data_path=str(outside))
    line = refused(reachy, tmp_path / 'out', capsys)
    assert 'key data_path' in line
    assert 'outside the dataset folder' in line


def test_feature_key_walking_out_of_the_folder_is_refused(
        lerobot_data: Path, g1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # videos/chunk-000/{video_key}/episode_000001.mp4 with the key ../../../secret
    secret = tmp_path / 'secret'
    secret.mkdir()
    shutil.copy(lerobot_data / G1 / G1_VIDEO, secret / 'episode_000001.mp4')
    edit_json(g1 / 'meta/info.json', lambda info: info['features'].update(
        {'../../../secret': info['features'].pop('observation.images.cam_high')}))
    line = refused(g1, tmp_path / 'out', capsys, '--episodes', '1')
    assert "key video_path (feature '../../../secret')" in line
    assert f'resolves to {secret}/episode_000000.mp4, outside the dataset folder' in line


def test_symlink_out_of_the_folder_is_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outside = tmp_path / 'elsewhere.parquet'
    shutil.move(reachy / V3_DATA, outside)
    (reachy / V3_DATA).symlink_to(outside)
    line = refused(reachy, tmp_path / 'out', capsys)
    assert f'key data_path: {V3_DATA!r} resolves to {outside}, outside the dataset' in line


def test_symlink_inside_the_folder_is_read(reachy: Path, tmp_path: Path) -> None:
    (reachy / 'store').mkdir()
    shutil.move(reachy / V3_DATA, reachy / 'store/rows.parquet')
    (reachy / V3_DATA).symlink_to(reachy / 'store/rows.parquet')
    result = import_lerobot(reachy, None, tmp_path / 'out')
    assert [b.frames for b in result.bags] == [299, 300, 300]


def test_a_hub_cache_snapshot_reads_its_blobs(reachy: Path, tmp_path: Path) -> None:
    """``huggingface_hub``'s cache: ``<repo>/snapshots/<rev>/`` holds symlinks into
    ``<repo>/blobs/``. Those are read; a symlink out of the repo's cache is still refused."""
    repo = tmp_path / 'datasets--lab--reachy'
    snap = repo / 'snapshots' / 'abc123'
    (repo / 'blobs').mkdir(parents=True)
    shutil.copytree(reachy, snap)
    for i, file in enumerate(sorted(p for p in snap.rglob('*') if p.is_file())):
        blob = repo / 'blobs' / f'{i:04d}'
        shutil.move(file, blob)
        file.symlink_to(os.path.relpath(blob, file.parent))
    result = import_lerobot(snap, None, tmp_path / 'out')
    assert [b.frames for b in result.bags] == [299, 300, 300]
    outside = tmp_path / 'elsewhere.parquet'
    shutil.copy(snap / V3_DATA, outside)
    (snap / V3_DATA).unlink()
    (snap / V3_DATA).symlink_to(outside)
    with pytest.raises(LeRobotError, match='outside the dataset folder'):
        import_lerobot(snap, None, tmp_path / 'out2')


# -- path templates are filled, never evaluated --------------------------------------------

@pytest.mark.parametrize('template', [
    'data/chunk-{chunk_index.__class__.__mro__}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index:>300000000}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index:0300000000d}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index:999d}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index[0]}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index!r}/file-{file_index:03d}.parquet',
    'data/chunk-{chunk_index:{file_index}}/file.parquet',
    'data/chunk-{episode_index:03d}/file-{file_index:03d}.parquet',
    'data/chunk-{0}/file-{}.parquet',
    'data/chunk-{chunk_index:03d/file.parquet',
    'data/chunk-}.parquet',
])
def test_format_string_payloads_are_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str) -> None:
    edit_info(reachy, data_path=template)
    line = refused(reachy, tmp_path / 'out', capsys)
    assert f'{reachy}/meta/info.json: key data_path: ' in line
    assert len(line) < 400


def test_video_key_takes_no_format_spec(
        g1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_info(g1, video_path='videos/{video_key:>99}/episode_{episode_index:06d}.mp4')
    line = refused(g1, tmp_path / 'out', capsys)
    assert 'meta/info.json: key video_path: placeholder {video_key:>99}' in line


def test_plain_and_space_padded_placeholders_still_work(reachy: Path, tmp_path: Path) -> None:
    (reachy / 'data/chunk-0').mkdir()
    shutil.move(reachy / V3_DATA, reachy / 'data/chunk-0/file-  0.parquet')
    edit_info(reachy, data_path='data/chunk-{chunk_index}/file-{file_index:3d}.parquet')
    result = import_lerobot(reachy, None, tmp_path / 'out')
    assert [b.status for b in result.bags] == [BagStatus.OK] * 3


# -- sizes are bounded before anything is allocated ---------------------------------------

@pytest.mark.parametrize(('shape', 'values'), [([1_000_000_000], 1_000_000_000),
                                               ([100_000, 100_000], 10_000_000_000),
                                               ([4097], 4097)])
def test_huge_feature_shape_is_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], shape: list[int],
        values: int) -> None:
    edit_json(reachy / 'meta/info.json',
              lambda info: info['features']['observation.state'].update(shape=shape))
    line = refused(reachy, tmp_path / 'out', capsys)
    assert (f'meta/info.json: key features.observation.state.shape: {shape} is {values} values '
            'per frame; ptr reads state/action vectors of at most 4096') in line


def profile_file(tmp_path: Path, cameras: dict[str, str], size: list[int]) -> Path:
    file = tmp_path / 'profile.yaml'
    file.write_text(json.dumps({'format': 'lerobot', 'robot': 'reachy2',
                                'state': 'observation.state', 'action': 'action',
                                'cameras': cameras, 'image_size': size}))
    return file


@pytest.mark.parametrize('size', [[100_000, 100_000], [8193, 8], [0, 8]])
def test_profile_image_size_is_bounded(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], size: list[int]) -> None:
    prof = profile_file(tmp_path, {'cam': 'observation.image'}, size)
    line = refused(reachy, tmp_path / 'out', capsys, '--profile', str(prof))
    assert f'{prof}: key image_size: expected [H, W] integers in 1..8192, got {size}' in line


def test_frame_bytes_are_bounded(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = profile_file(tmp_path, {f'c{i}': 'observation.image' for i in range(2)}, [8192, 8192])
    line = refused(reachy, tmp_path / 'out', capsys, '--profile', str(prof))
    assert f'{prof}: one frame is 384 MiB' in line
    assert 'at most 256 MiB per frame' in line


def test_episode_bytes_are_bounded(reachy: Path, tmp_path: Path) -> None:
    # one 8192 x 8192 camera: 192 MiB a frame, x 300 rows = 56 GiB (the mp4 is absent, so
    # without the bound all of it would be allocated as zeros)
    prof = profile_file(tmp_path, {'cam': 'observation.image'}, [8192, 8192])
    from bag_tools.lerobot import load_lerobot_profile

    result = import_lerobot(reachy, load_lerobot_profile(prof), tmp_path / 'out')
    assert [b.status for b in result.bags] == [BagStatus.FAILED] * 3
    assert 'episode 0 (data/chunk-000/file-000.parquet): 299 rows at image_size [8192, 8192] ' \
        'are more than the 16 GiB ptr holds per episode' in result.bags[0].reason
    assert not (tmp_path / 'out').exists()


# -- malformed metadata: one line naming the file and the field ---------------------------

def set_feature(name: str, **values: Any) -> Callable[[Any], None]:
    return lambda info: info['features'][name].update(values)


INFO_CASES: dict[str, tuple[Callable[[Any], Any], str]] = {
    'fps tiny': (lambda i: i.update(fps=1e-300), 'key fps: expected a number in [0.01, 1000]'),
    'fps huge': (lambda i: i.update(fps=1e12), 'key fps: expected a number in [0.01, 1000]'),
    'fps zero': (lambda i: i.update(fps=0), 'key fps: expected a number'),
    'fps text': (lambda i: i.update(fps='30'), "key fps: expected a number in [0.01, 1000], "
                                               "got '30'"),
    'fps bool': (lambda i: i.update(fps=True), 'key fps: expected a number'),
    'fps missing': (lambda i: i.pop('fps'), 'key fps missing'),
    'not an object': (lambda i: [], 'meta/info.json: expected a JSON object, got []'),
    'version': (lambda i: i.update(codebase_version='v1.6'), "codebase_version 'v1.6'"),
    'version list': (lambda i: i.update(codebase_version=[]), 'codebase_version []'),
    'chunks_size text': (lambda i: i.update(chunks_size='abc'),
                         "key chunks_size: expected a positive integer, got 'abc'"),
    'chunks_size zero': (lambda i: i.update(chunks_size=0), 'key chunks_size: expected'),
    'splits list': (lambda i: i.update(splits=['0:3']), 'key splits: expected an object'),
    'data_path number': (lambda i: i.update(data_path=5),
                         'key data_path: expected a path template string, got 5'),
    'data_path missing': (lambda i: i.pop('data_path'), 'key data_path missing'),
    'video_path list': (lambda i: i.update(video_path=['x']), 'key video_path: expected a path'),
    'features list': (lambda i: i.update(features=[]), 'key features: expected an object'),
    'feature text': (lambda i: i['features'].update(action='float32'),
                     "key features.action: expected an object, got 'float32'"),
    'dtype number': (set_feature('action', dtype=5), 'key features.action.dtype: expected a '
                                                     'string, got 5'),
    'shape text': (set_feature('action', shape='19'), 'key features.action.shape: expected a '
                                                      "list of positive integers, got '19'"),
    'shape negative': (set_feature('action', shape=[-1]), 'key features.action.shape'),
    'shape float': (set_feature('action', shape=[1.5]), 'key features.action.shape'),
    'shape bool': (set_feature('action', shape=[True]), 'key features.action.shape'),
    'info list': (set_feature('observation.image', info=['h264']),
                  'key features.observation.image.info: expected an object'),
}


@pytest.mark.parametrize('case', list(INFO_CASES))
def test_malformed_info_json(reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                             case: str) -> None:
    change, expected = INFO_CASES[case]
    edit_json(reachy / 'meta/info.json', change)
    line = refused(reachy, tmp_path / 'out', capsys)
    assert f'{reachy}/meta/info.json: ' in line
    assert expected in line


@pytest.mark.parametrize(('text', 'expected'), [
    ('{"fps": ', 'meta/info.json: not valid JSON'),
    ('[' * 100_000, 'meta/info.json: not valid JSON'),
    ('{"fps": NaN}', 'key fps: expected a number in [0.01, 1000], got nan'),
    ('{"fps": 1e999}', 'key fps: expected a number in [0.01, 1000], got inf'),
], ids=['truncated', 'nested 100000 deep', 'fps NaN', 'fps inf'])
def test_unparsable_info_json(reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                              text: str, expected: str) -> None:
    info = json.loads((reachy / 'meta/info.json').read_text())
    if text.startswith('{"fps": ') and text.endswith('}'):
        text = json.dumps(info).replace('"fps": 30', text[1:-1])
    (reachy / 'meta/info.json').write_text(text)
    assert expected in refused(reachy, tmp_path / 'out', capsys)


@pytest.mark.parametrize(('content', 'expected'), [
    ('[]', 'meta/ptr.json: expected a JSON object, got []'),
    ('{"robot": []}', 'meta/ptr.json: key robot: expected an object with a profile object'),
    ('{"robot": {"name": "x"}}', 'meta/ptr.json: key robot: expected an object with a profile'),
    ('{"robot": ', 'meta/ptr.json: not valid JSON'),
    ('{"robot": {"profile": {"robot": "x"}}}', 'meta/ptr.json'),
])
def test_malformed_ptr_json(reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                            content: str, expected: str) -> None:
    (reachy / 'meta/ptr.json').write_text(content)
    assert expected in refused(reachy, tmp_path / 'out', capsys)


def v3_tasks(table: dict[str, list[Any]]) -> Callable[[Path], object]:
    return lambda root: pq.write_table(pa.table(table), root / 'meta/tasks.parquet')


def v3_episodes(change: Callable[[dict[str, list[Any]]], None]) -> Callable[[Path], object]:
    return lambda root: edit_table(root / V3_EPISODES, change)


def v3_column(name: str, values: list[Any]) -> Callable[[Path], object]:
    return v3_episodes(lambda t: t.update({name: values}))


def garbage(rel: str) -> Callable[[Path], object]:
    return lambda root: (root / rel).write_bytes(b'PAR1 not really')


def folder_instead(rel: str) -> Callable[[Path], object]:
    def make(root: Path) -> None:
        (root / rel).unlink(missing_ok=True)
        (root / rel).mkdir()
    return make


V3_CASES: dict[str, tuple[Callable[[Path], object], str]] = {
    'tasks without task_index': (v3_tasks({'task': ['x']}),
                                 'meta/tasks.parquet: column task_index missing'),
    'tasks without text': (v3_tasks({'task_index': [0]}), 'meta/tasks.parquet: column task '
                                                          'missing'),
    'task_index text': (v3_tasks({'task_index': ['a'], 'task': ['x']}),
                        "meta/tasks.parquet: row 0: column task_index: expected a non-negative "
                        "integer, got 'a'"),
    'task_index negative': (v3_tasks({'task_index': [-1], 'task': ['x']}),
                            'row 0: column task_index: expected a non-negative integer, got -1'),
    'task text number': (v3_tasks({'task_index': [0], 'task': [5]}),
                         'meta/tasks.parquet: row 0: column task: expected a string, got 5'),
    'tasks not parquet': (garbage('meta/tasks.parquet'), 'meta/tasks.parquet: cannot read '
                                                         'parquet'),
    'tasks folder': (folder_instead('meta/tasks.parquet'), 'meta/tasks.parquet: is not a file'),
    'episodes not parquet': (garbage(V3_EPISODES), f'{V3_EPISODES}: cannot read parquet'),
    'episodes folder': (folder_instead(V3_EPISODES), f'{V3_EPISODES}: is not a file'),
    'episode_index text': (v3_column('episode_index', ['a', 'b', 'c']),
                           f"{V3_EPISODES}: row 0: column episode_index: expected a "
                           "non-negative integer, got 'a'"),
    'episode_index null': (v3_column('episode_index', [None, 1, 2]),
                           f'{V3_EPISODES}: row 0: column episode_index: missing'),
    'data chunk text': (v3_column('data/chunk_index', ['abc'] * 3),
                        "row 0: column data/chunk_index: expected a non-negative integer, got "
                        "'abc'"),
    'data file negative': (v3_column('data/file_index', [-1] * 3),
                           'row 0: column data/file_index: expected a non-negative integer'),
    'length text': (v3_column('length', ['abc'] * 3), 'row 0: column length: expected'),
    'tasks text': (v3_column('tasks', ['abc'] * 3),
                   "row 0: column tasks: expected a list of strings, got 'abc'"),
    'video chunk text': (v3_column('videos/observation.image/chunk_index', ['x'] * 3),
                         'row 0: column videos/observation.image/chunk_index: expected'),
    'video from nan': (v3_column('videos/observation.image/from_timestamp', [float('nan')] * 3),
                       'row 0: column videos/observation.image/from_timestamp: expected seconds'),
    'video from inf': (v3_column('videos/observation.image/from_timestamp', [float('inf')] * 3),
                       'column videos/observation.image/from_timestamp: expected seconds'),
    'data episode_index text': (lambda root: edit_table(root / V3_DATA, lambda t: t.update(
        episode_index=[str(i) for i in t['episode_index']])),
        f'{V3_DATA}: column episode_index: expected integers without nulls, got string'),
    'data not parquet': (garbage(V3_DATA), f'{V3_DATA}: cannot read parquet'),
    'stats not json': (lambda root: (root / 'meta/stats.json').write_text('{'),
                       'meta/stats.json: not valid JSON'),
    'stats list': (lambda root: (root / 'meta/stats.json').write_text('[]'),
                   'meta/stats.json: expected a JSON object, got []'),
    'stats folder': (folder_instead('meta/stats.json'), 'meta/stats.json: is not a file'),
    'stats entry list': (lambda root: edit_json(root / 'meta/stats.json', lambda s: s.update(
        {'observation.state': []})), 'meta/stats.json: key observation.state: expected an '
                                     'object with min and max'),
    'stats min text': (lambda root: edit_json(root / 'meta/stats.json', lambda s: s[
        'observation.state'].update(min='abc')),
        "meta/stats.json: key observation.state.min: expected 19 numbers, got 'abc'"),
    'stats min short': (lambda root: edit_json(root / 'meta/stats.json', lambda s: s[
        'observation.state'].update(min=[0.0, 1.0])),
        'meta/stats.json: key observation.state.min: expected 19 numbers, got [0.0, 1.0]'),
    'stats max ragged': (lambda root: edit_json(root / 'meta/stats.json', lambda s: s[
        'observation.state'].update(max=[[1.0], [2.0, 3.0]])),
        'meta/stats.json: key observation.state.max: expected 19 numbers'),
    'ptr part': (v3_column('ptr/part', ['5'] * 3), 'column ptr/part of meta/episodes: expected '
                                                   'a JSON array, got 5'),
    'ptr part values': (v3_column('ptr/part', ['[3, 1]'] * 3),
                        'column ptr/part of meta/episodes: expected [i, n], 0 <= i < n'),
    'ptr tags': (v3_episodes(lambda t: t.update({'ptr/tags': ['[1]'] * 3,
                                                 'ptr/episode_id': ['e0', 'e1', 'e2']})),
                 'column ptr/tags of meta/episodes: expected a JSON object, got [1]'),
}


@pytest.mark.parametrize('case', list(V3_CASES))
def test_malformed_v3_metadata(reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               case: str) -> None:
    change, expected = V3_CASES[case]
    change(reachy)
    capsys.readouterr()
    code = main(['ingest', str(reachy), '--out', str(tmp_path / 'out'), '--no-progress'])
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert code in (1, 2), err
    lines = [line for line in err.splitlines()
             if line.startswith(('ptr ingest: error: ', '  FAILED '))]
    assert lines, err
    assert expected in lines[0], lines[0]
    assert code == 1 or len(lines) == 1  # refused as a whole, or each episode failing alone
    assert leftovers(tmp_path / 'out') == []  # nothing imported: nothing left


def v21_line(rel: str, line: str) -> Callable[[Path], object]:
    """Put ``line`` last in the JSON-lines file ``rel`` (the one an episode index keeps)."""
    def change(root: Path) -> None:
        file = root / rel
        file.write_text(file.read_text().rstrip('\n') + '\n' + line + '\n')
    return change


V21_CASES: dict[str, tuple[Callable[[Path], object], str]] = {
    'tasks line list': (v21_line('meta/tasks.jsonl', '[]'),
                        'meta/tasks.jsonl: line 2: expected a JSON object, got []'),
    'tasks no text': (v21_line('meta/tasks.jsonl', '{"task_index": 3}'),
                      'meta/tasks.jsonl: line 2: key task: expected a string, got None'),
    'task_index text': (v21_line('meta/tasks.jsonl', '{"task_index": "x", "task": "t"}'),
                        "meta/tasks.jsonl: line 2: key task_index: expected a non-negative "
                        "integer, got 'x'"),
    'tasks bad json': (v21_line('meta/tasks.jsonl', '{"task'), 'meta/tasks.jsonl: line 2: not '
                                                               'valid JSON'),
    'tasks not utf-8': (lambda root: (root / 'meta/tasks.jsonl').write_bytes(b'\xff\xfe'),
                        'meta/tasks.jsonl: cannot read'),
    'tasks folder': (folder_instead('meta/tasks.jsonl'), 'meta/tasks.jsonl: is not a file'),
    'episodes no index': (v21_line('meta/episodes.jsonl', '{"length": 3}'),
                          'meta/episodes.jsonl: line 101: key episode_index: missing'),
    'episodes length text': (v21_line('meta/episodes.jsonl',
                                      '{"episode_index": 1, "length": "abc"}'),
                             "meta/episodes.jsonl: line 101: key length: expected a non-negative "
                             "integer, got 'abc'"),
    'episodes tasks text': (v21_line('meta/episodes.jsonl',
                                     '{"episode_index": 1, "tasks": "pick"}'),
                            'meta/episodes.jsonl: line 101: key tasks: expected a list of '
                            'strings'),
    'episodes folder': (folder_instead('meta/episodes.jsonl'), 'meta/episodes.jsonl: is not a '
                                                               'file'),
    'stats no stats': (v21_line('meta/episodes_stats.jsonl', '{"episode_index": 0}'),
                       'meta/episodes_stats.jsonl: line 101: key stats: expected an object'),
    'stats ragged': (v21_line('meta/episodes_stats.jsonl', json.dumps(
        {'episode_index': 0, 'stats': {'observation.state': {'min': [0.0], 'max': [1.0]}}})),
        'meta/episodes_stats.jsonl: line 101: key stats.observation.state.min: expected 26 '
        'numbers, got [0.0]'),
    'data not parquet': (garbage('data/chunk-000/episode_000001.parquet'),
                         'data/chunk-000/episode_000001.parquet: cannot read parquet'),
}


@pytest.mark.parametrize('case', list(V21_CASES))
def test_malformed_v21_metadata(g1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                case: str) -> None:
    change, expected = V21_CASES[case]
    change(g1)
    line = refused(g1, tmp_path / 'out', capsys, '--episodes', '1')
    assert f'{g1}/' in line
    assert expected in line


# -- an import that imports nothing fails and leaves nothing -------------------------------

def test_a_folder_without_data_is_refused_and_writes_nothing(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(reachy / 'data')
    line = refused(reachy, tmp_path / 'out', capsys)
    assert (f'{reachy}: nothing to import: none of its 3 listed episode(s) has data (first: '
            'episode 0: data file data/chunk-000/file-000.parquet is missing)') in line
    with pytest.raises(LeRobotError, match='nothing to import'):
        import_lerobot(reachy, None, tmp_path / 'new' / 'api')
    assert not (tmp_path / 'new').exists()


def test_a_data_file_that_is_a_folder_is_named(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder_instead(V3_DATA)(reachy)
    line = refused(reachy, tmp_path / 'out', capsys)
    assert f'data file {V3_DATA} is not a file' in line


def test_selected_episodes_without_data_are_refused(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(reachy, tmp_path / 'out', capsys, '--episodes', '7-8')
    assert (f'{reachy}: nothing to import: no selected episode has data (first: episode 7 is '
            'not in the dataset); episodes with data: 0, 1, 2') in line


def test_every_episode_failing_leaves_no_dataset(
        reachy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prof = tmp_path / 'long.yaml'
    prof.write_text('format: lerobot\nrobot: reachy2\nstate: observation.state\n'
                    'action: action\nmin_episode_steps: 1000\n')
    code = main(['ingest', str(reachy), '--profile', str(prof), '--out', str(tmp_path / 'out'),
                 '--no-progress'])
    captured = capsys.readouterr()
    assert code == 1
    assert '0 episode(s) imported, 0 skipped, 3 failed' in captured.out
    assert 'shorter than min_episode_steps 1000' in captured.err
    assert leftovers(tmp_path / 'out') == []
    from bag_tools.lerobot import load_lerobot_profile

    result = import_lerobot(reachy, load_lerobot_profile(prof), tmp_path / 'new' / 'api')
    assert [b.status for b in result.bags] == [BagStatus.FAILED] * 3
    assert not (tmp_path / 'new').exists()


def test_api_raises_one_line(reachy: Path, tmp_path: Path) -> None:
    edit_info(reachy, data_path='../{chunk_index.__class__}')
    with pytest.raises(LeRobotError) as info:
        import_lerobot(reachy, None, tmp_path / 'out')
    assert '\n' not in str(info.value)
