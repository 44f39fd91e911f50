"""``ptr ingest`` and ``ptr inspect DATASET`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from armbags import T0, arm_content, arm_profile, frame_pixels, snapshot
from bagfactory import encode_jpeg, write_bag

from bag_tools.dataset import Dataset
from ptr_cli.main import main

PTR = [str(Path(sys.executable).with_name('ptr'))]


def ptr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PTR, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def profile_file(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / 'arm3.yaml'
    path.write_text(yaml.safe_dump(arm_profile(**overrides)))
    return path


def test_ingest_then_inspect(tmp_path: Path) -> None:
    good = write_bag(arm_content(tags={'ptr.source': 'expert'}), tmp_path / 'good', 'mcap')
    also = write_bag(arm_content(duration_s=2.0), tmp_path / 'also', 'ros1')
    missing = write_bag(arm_content(camera=False), tmp_path / 'nocam', 'sqlite3')
    out = tmp_path / 'ds'
    proc = ptr('ingest', str(good), str(also), str(missing), '--profile',
               str(profile_file(tmp_path)), '--out', str(out), '-j', '1')
    assert proc.returncode == 1, proc.stderr  # one bag failed
    assert '2 bag(s) ingested, 0 skipped, 1 failed; 2 episode(s), 52 frames' in proc.stdout
    assert 'worst sync figures' in proc.stdout
    assert '/cam/image_raw/compressed' in proc.stdout
    assert f'{missing}: topic /cam/image_raw/compressed: not in the bag' in proc.stderr
    again = ptr('ingest', str(good), str(also), '-p', str(profile_file(tmp_path)), '-o',
                str(out), '--no-progress')
    assert again.returncode == 0, again.stderr
    assert '0 bag(s) ingested, 2 skipped, 0 failed' in again.stdout

    shown = ptr('inspect', str(out))
    assert shown.returncode == 0, shown.stderr
    assert 'episodes: 2   frames: 52' in shown.stdout
    assert 'robot arm3: 2 episodes from 2 bags, 52 frames, state 3, action 3' in shown.stdout
    assert 'cameras: wrist (3ch uint8) at 12x16' in shown.stdout
    assert 'sources: expert: 1' in shown.stdout
    assert '/joint_states' in shown.stdout
    as_json = json.loads(ptr('inspect', '--json', str(out)).stdout)
    assert as_json['kind'] == 'dataset'
    arm = as_json['robots']['arm3']
    assert arm['episodes'] == 2
    assert arm['stats']['state']['count'] == 52
    assert arm['sync']['/cam/image_raw/compressed']['max_offset_s'] < 1 / 15


def _wait_group_gone(pgid: int, timeout: float = 20.0) -> None:
    """SIGKILLed workers die asynchronously; wait until the process group is empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def test_bad_profile_is_one_line(tmp_path: Path) -> None:
    bag = write_bag(arm_content(), tmp_path / 'b', 'mcap')
    proc = ptr('ingest', str(bag), '-p', str(profile_file(tmp_path, rate_hz=-1)), '-o',
               str(tmp_path / 'ds'))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f'ptr ingest: error: {tmp_path / "arm3.yaml"}: key rate_hz: must be > 0, got -1']


def test_killed_ingest_resumes_to_an_identical_dataset(tmp_path: Path) -> None:
    """SIGKILL a real `ptr ingest` (and its workers) mid-way, re-run, compare byte for byte."""
    bags = []
    for i in range(8):
        c = arm_content(duration_s=6.0, js_hz=100.0, cam_hz=30.0, tags={'ptr.source': f's{i}'})
        c.empty('/episode', T0 + 3_000_000_000)  # two episodes per bag
        bags.append(write_bag(c, tmp_path / 'bags' / f'b{i}', ('mcap', 'sqlite3', 'ros1')[i % 3]))
    prof = profile_file(tmp_path, episodes={'marker_topic': '/episode'}, image_size=[48, 64])
    args = ['ingest', *map(str, bags), '-p', str(prof), '--no-progress', '-j', '2']

    reference = tmp_path / 'reference'
    assert ptr(*args, '-o', str(reference)).returncode == 0
    assert len(Dataset.open(reference)) == 16

    out = tmp_path / 'interrupted'
    proc = subprocess.Popen([*PTR, *args, '-o', str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    episodes = out / 'episodes'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = [p for p in episodes.iterdir() if not p.name.startswith('.')] if (
            episodes.is_dir()) else []
        if len(done) >= 3:  # some bags landed, others are in flight
            break
        time.sleep(0.005)
    assert proc.poll() is None, 'ingest finished before it could be interrupted'
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _wait_group_gone(proc.pid)
    partial = Dataset.open(out)  # valid right after the kill (read-only: adopts nothing)
    assert len(partial) < 16

    resumed = ptr(*args, '-o', str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert 'skipped' in resumed.stdout
    assert snapshot(out) == snapshot(reference)
    ep = Dataset.open(out).episodes()[0]
    assert isinstance(ep.images['wrist'], np.memmap)  # arrays on disk are memory-mappable


def test_max_invalid_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-invalid fails a bag with a stream invalid over that share (one line, nothing of
    it written); without it the bag lands with a warning; a share outside 0..1 is a usage error."""
    c = arm_content(camera=False)
    for k in range(8):  # the camera stops after 0.5 s of 3 s: invalid at 77 % of the grid
        c.compressed_image('/cam/image_raw/compressed', T0 + round(k / 15 * 1e9),
                           encode_jpeg(frame_pixels(k)))
    short = write_bag(c, tmp_path / 'short', 'mcap')
    good = write_bag(arm_content(), tmp_path / 'good', 'mcap')
    args = ['ingest', str(good), str(short), '-p', str(profile_file(tmp_path)), '--no-progress',
            '-j', '1']
    assert main([*args, '--out', str(tmp_path / 'strict'), '--max-invalid', '0.5']) == 1
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if str(short) in x]
    assert line.startswith(f'failed: {short}: over max_invalid 0.5: stream camera:wrist')
    assert [e['source'] for e in Dataset.open(tmp_path / 'strict').manifest['episodes']] == [
        str(good)]
    assert main([*args, '--out', str(tmp_path / 'lenient')]) == 0
    assert len(Dataset.open(tmp_path / 'lenient')) == 2
    with pytest.raises(SystemExit) as exit_info:
        main([*args, '--out', str(tmp_path / 'bad'), '--max-invalid', '1.5'])
    assert exit_info.value.code == 2
    assert ("ptr ingest: error: argument --max-invalid: '1.5' is not a share between 0 and 1"
            in capsys.readouterr().err)
    assert not (tmp_path / 'bad').exists()
