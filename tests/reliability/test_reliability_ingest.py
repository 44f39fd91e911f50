"""Ingest touches only what it made: planted folders, crafted manifests, bad ``--out``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from armbags import arm_content, arm_profile
from bagfactory import write_bag

from bag_tools.dataset import Dataset, check_episode_id
from bag_tools.errors import DatasetError
from bag_tools.ingest import ingest
from bag_tools.lock import LOCK_NAME
from bag_tools.profile import RobotProfile

PTR = str(Path(sys.executable).with_name('ptr'))


def prof() -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(), source='test-profile')


def tree(root: Path) -> dict[str, Any]:
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob('*'))}


def ptr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PTR, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    return write_bag(arm_content(duration_s=2.0), tmp_path / 'bag', 'mcap')


def plant(root: Path) -> None:
    """Look-alikes of ptr's temp names, owned by a user (the issue's planted folder)."""
    (root / 'episodes' / '.tmp-holiday-999999999').mkdir(parents=True)
    (root / 'episodes' / '.tmp-holiday-999999999' / 'photo.jpg').write_bytes(b'\xff\xd8 me')
    (root / 'episodes' / 'notes').mkdir()
    (root / 'episodes' / 'notes' / 'meta.json').write_text('{"mine": true}')
    (root / '.manifest.json.999999999.tmp').write_text('my draft')
    (root / '.tmp-manifest-999999999').mkdir()  # even our own name, without our marker


@pytest.mark.parametrize('layout', ['planted', 'episodes-only'])
def test_a_folder_that_is_not_a_dataset_is_refused_untouched(
    tmp_path: Path, bag: Path, layout: str,
) -> None:
    out = tmp_path / 'user'
    plant(out)
    if layout == 'planted':
        (out / 'thesis.tex').write_text('years of work')
    before = tree(out)
    with pytest.raises(DatasetError, match=r'is not empty .* not a ptr dataset'):
        ingest([bag], prof(), out)
    assert tree(out) == before
    with pytest.raises(DatasetError, match='not a ptr dataset'):
        Dataset.open(out)
    assert tree(out) == before


def test_in_a_dataset_only_marked_temps_of_dead_writers_go(tmp_path: Path, bag: Path) -> None:
    out = tmp_path / 'ds'
    assert ingest([bag], prof(), out).ok
    plant(out)
    theirs = tree(out)
    ours = out / 'episodes' / '.tmp-x-999999999'
    ours.mkdir()
    (ours / '.ptr-temp').write_text(json.dumps({'pid': 999_999_999, 'writer': 'ptr'}))
    live = out / 'episodes' / '.tmp-y-1'
    live.mkdir()
    (live / '.ptr-temp').write_text(json.dumps({'pid': 1, 'writer': 'ptr'}))  # init lives
    planted = tree(out)
    Dataset.open(out)  # a reader removes nothing (issue 14: read commands never write)
    assert tree(out) == planted
    ingest([bag], prof(), out)  # the next writer, under the dataset's lock, cleans up
    assert not ours.exists()
    assert live.is_dir()
    live_files = {str(p.relative_to(out)) for p in live.rglob('*')} | {str(live.relative_to(out))}
    live_files.add(LOCK_NAME)  # rewritten by each writer (its pid and start time)
    assert {k: v for k, v in tree(out).items() if k not in live_files} == {
        k: v for k, v in theirs.items() if k != LOCK_NAME}


@pytest.mark.parametrize('bad', ['../../victim', '/tmp/victim', 'a/b', '..', '.hidden', '',
                                 'a\\b', 'x\x00y'])
def test_episode_ids_are_plain_names(bad: str) -> None:
    with pytest.raises(DatasetError, match='episode id'):
        check_episode_id(bad, where='manifest.json')
    assert check_episode_id('run_1-abc.def-arm3-000', where='x') == 'run_1-abc.def-arm3-000'


def test_a_crafted_manifest_cannot_reach_outside(tmp_path: Path, bag: Path) -> None:
    """The issue's case: an id ``../../victim`` made ingest rmtree a folder outside --out and
    ``ptr inspect`` read arrays outside the dataset."""
    out = tmp_path / 'data' / 'ds'
    assert ingest([bag], prof(), out).ok
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'keep.txt').write_text('precious')
    manifest = json.loads((out / 'manifest.json').read_text())
    real = manifest['episodes'][0]
    manifest['episodes'].append({**real, 'id': '../../victim', 'content_hash': 'f' * 64})
    manifest['episodes'][0] = {**real, 'content_hash': 'f' * 64}  # a "half-ingested" bag
    (out / 'manifest.json').write_text(json.dumps(manifest))
    before = tree(out)
    with pytest.raises(DatasetError, match=r"manifest.json: episode id '../../victim'"):
        ingest([bag], prof(), out)
    assert (victim / 'keep.txt').read_text() == 'precious'
    assert tree(out) == before
    shown = ptr('inspect', str(out))
    assert shown.returncode == 2
    lines = shown.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "episode id '../../victim' contains a path separator" in lines[0]
    # and the id inside an episode's own meta.json
    meta = out / 'episodes' / real['id'] / 'meta.json'
    meta.write_text(json.dumps({**json.loads(meta.read_text()), 'id': '../../victim'}))
    manifest['episodes'] = [real]
    (out / 'manifest.json').write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r'meta\.json: episode id'):
        Dataset.open(out).episodes()


def test_nothing_ingested_creates_nothing_and_the_retry_works(tmp_path: Path, bag: Path) -> None:
    profile = tmp_path / 'arm3.yaml'
    profile.write_text(yaml.safe_dump(arm_profile(rate_hz=20.0)))
    bad = write_bag(arm_content(camera=False), tmp_path / 'nocam', 'mcap')
    out = tmp_path / 'new' / 'ds'
    failed = ptr('ingest', str(bad), '-p', str(profile), '-o', str(out), '--no-progress')
    assert failed.returncode == 1, failed.stderr
    assert 'nothing written' in failed.stdout
    assert 'Traceback' not in failed.stderr
    assert not (tmp_path / 'new').exists()
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert ptr('ingest', str(bad), '-p', str(profile), '-o', str(empty)).returncode == 1
    assert empty.is_dir()
    assert not any(empty.iterdir())  # the user's folder stays, empty
    for target in (out, empty):
        fixed = ptr('ingest', str(bag), '-p', str(profile), '-o', str(target), '--no-progress')
        assert fixed.returncode == 0, fixed.stderr
        assert Dataset.open(target).manifest['rate_hz'] == 20.0


def test_out_naming_a_file_is_one_line(tmp_path: Path, bag: Path, repo_root: Path) -> None:
    file = tmp_path / 'notes.txt'
    file.write_text('mine')
    profile = tmp_path / 'arm3.yaml'
    profile.write_text(yaml.safe_dump(arm_profile()))
    got = ptr('ingest', str(bag), '-p', str(profile), '-o', str(file), '--no-progress')
    assert got.returncode == 2
    assert got.stderr.strip().splitlines() == [
        f'ptr ingest: error: {file}: is a file, not a dataset directory; choose another --out']
    assert file.read_text() == 'mine'
    ds = tmp_path / 'ds'
    assert ingest([bag], prof(), ds).ok
    trained = ptr('train', '--config', str(repo_root / 'config/train/debug.yaml'), '--dataset',
                  str(ds), '--out', str(file), '--no-progress')
    assert trained.returncode == 2, trained.stderr[-2000:]
    assert trained.stderr.strip().splitlines()[-1] == (
        f'ptr train: error: out_dir: {file} is a file, not a run directory; choose another --out')
    assert 'Traceback' not in trained.stderr
    assert file.read_text() == 'mine'


def test_a_kill_between_rename_and_unmarking_leaves_no_marker(tmp_path: Path, bag: Path) -> None:
    out = tmp_path / 'ds'
    assert ingest([bag], prof(), out).ok
    episode = next(p for p in (out / 'episodes').iterdir())
    (episode / '.ptr-temp').write_text(json.dumps({'pid': 999_999_999, 'writer': 'ptr'}))
    Dataset.open(out)  # a reader writes nothing; the next writer unmarks it
    assert (episode / '.ptr-temp').exists()
    ingest([bag], prof(), out)
    assert not (episode / '.ptr-temp').exists()
