"""The data side of issue 14: one writer per dataset, read commands that never write, outputs
that are never someone else's file, full and read-only disks, a real cut PR2 bag, leftovers of
killed writers, and a grid too long to allocate.

Real parts throughout: `ptr` subprocesses (two at once, SIGSTOP/SIGKILL), the real PR2 bag, and
-- where this machine lets us (root, ``unshare``) -- a real full tmpfs and a real read-only
mount in a private mount namespace; elsewhere those cases are skipped (chmod does not stop root).
"""

from __future__ import annotations

import functools
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from armbags import T0, arm_content, arm_profile, joint_value
from bagfactory import BagContent, write_bag

from bag_tools.dataset import TEMP_MARKER, Dataset
from bag_tools.ingest import ingest
from bag_tools.lock import LOCK_NAME
from bag_tools.profile import RobotProfile

PTR = str(Path(sys.executable).with_name('ptr'))
REPO = Path(__file__).resolve().parents[2]
PR2 = REPO.parent / 'shared' / 'data' / 'bags' / 'real' / 'pr2_pr1012_sensors.bag'
PR2_PROFILE = REPO / 'config' / 'robots' / 'pr2_left_arm.yaml'
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}

needs_pr2 = pytest.mark.skipif(not PR2.is_file(), reason=f'{PR2} absent (shared test data)')


def ptr(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
        limit_gb: float | None = None) -> subprocess.CompletedProcess[str]:
    limit = None if limit_gb is None else functools.partial(_limit_memory, limit_gb)
    return subprocess.run([PTR, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, env=env or ENV, preexec_fn=limit)


def _limit_memory(gb: float) -> None:
    """A failed fix must end in MemoryError here, not in the kernel's OOM killer."""
    size = int(gb * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (size, size))


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def temps(root: Path) -> list[str]:
    """Every temp name a writer of ours uses, anywhere under ``root``."""
    pattern = re.compile(r'^\.tmp-|\.tmp-\d+$|\.tmp$|^ptr-salvage-')
    return sorted(str(p.relative_to(root)) for p in root.rglob('*') if pattern.search(p.name))


def tree(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob('*'))}


# -- shared inputs ---------------------------------------------------------------------------

@pytest.fixture(scope='module')
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """12 camera bags, their profile, and a 3-bag dataset made from them (read-only here)."""
    root = tmp_path_factory.mktemp('inputs')
    bags = [write_bag(arm_content(duration_s=3.0, js_hz=100.0, cam_hz=30.0),
                      root / 'bags' / f'b{i:02d}', 'mcap') for i in range(12)]
    prof = arm_profile(image_size=[48, 64])
    prof_file = root / 'arm3.yaml'
    prof_file.write_text(yaml.safe_dump(prof))
    ds = root / 'ds'
    assert ingest(bags[:3], RobotProfile.from_dict(prof, source='test'), ds).ok
    return {'bags': bags, 'profile': prof_file, 'ds': ds, 'root': root}


def copy_dataset(inputs: dict[str, Any], dst: Path) -> Path:
    shutil.copytree(inputs['ds'], dst)
    return dst


@functools.cache
def _mounts_work() -> bool:
    if shutil.which('unshare') is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        got = subprocess.run(['unshare', '-m', 'sh', '-c', f'mount -t tmpfs -o size=8k none {d}'],
                             capture_output=True, check=False)
    return got.returncode == 0


@pytest.fixture
def mounts() -> None:
    if not _mounts_work():
        pytest.skip('needs a private mount namespace (root and unshare) for a real full or '
                    'read-only file system; chmod does not stop root')


def on_tmpfs(mnt: Path, size: str, argv: list[str], *, setup: str = '', ro: bool = False
             ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run ``argv`` with a new tmpfs of ``size`` on ``mnt`` (``setup`` run first, then made
    read-only when ``ro``); returns its result and a copy of what the mount held at the end."""
    mnt.mkdir()
    after = mnt.with_name(f'{mnt.name}-after')
    after.mkdir()
    m = shlex.quote(str(mnt))
    steps = [f'mount -t tmpfs -o size={size} none {m}', setup,
             f'mount -o remount,ro {m}' if ro else '']
    script = (' && '.join(s for s in steps if s) + ' || exit 99; '
              f'{shlex.join(argv)}; rc=$?; cp -a {m}/. {shlex.quote(str(after))}/; exit $rc')
    got = subprocess.run(['unshare', '-m', 'sh', '-c', script], capture_output=True, text=True,
                         timeout=180, check=False, env=ENV)
    assert got.returncode != 99, got.stderr
    return got, after


def read_only(path: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``path`` bind-mounted read-only over itself."""
    p = shlex.quote(str(path))
    script = (f'mount --bind {p} {p} && mount -o remount,bind,ro {p} || exit 99; '
              f'exec {shlex.join(argv)}')
    got = subprocess.run(['unshare', '-m', 'sh', '-c', script], capture_output=True, text=True,
                         timeout=180, check=False, env=ENV)
    assert got.returncode != 99, got.stderr
    return got


# -- item 6: one writer per dataset ----------------------------------------------------------

def _start_ingest(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([PTR, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env=ENV)


def _wait_for(what: Callable[[], bool], proc: subprocess.Popen[Any], timeout: float = 120
              ) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert proc.poll() is None, 'the writer ended before it could be caught'
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.002)


def _holds_lock(out: Path, pid: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return (out / LOCK_NAME).read_text().startswith(f'pid {pid} ')
        except OSError:
            return False
    return check


def _episodes_on_disk(out: Path) -> set[str]:
    eps = out / 'episodes'
    return {p.name for p in eps.iterdir() if not p.name.startswith('.')} if eps.is_dir() else set()


def _wait_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def _assert_whole(out: Path, bags: int) -> None:
    """The dataset lists every bag's episode, its robot, and no folder it does not list."""
    ds = Dataset.open(out)
    assert len(ds) == bags
    assert list(ds.manifest['robots']) == ['arm3']
    assert _episodes_on_disk(out) == set(ds.episode_ids)
    assert temps(out) == []


def test_a_second_writer_fails_at_once_and_the_first_finishes(
    inputs: dict[str, Any], tmp_path: Path,
) -> None:
    """The issue: two `ptr ingest` of the same bags into one --out; the loser wrote its empty
    manifest last (0 episodes, the robot gone, orphan folders)."""
    out = tmp_path / 'ds'
    args = ['ingest', *map(str, inputs['bags']), '-p', str(inputs['profile']), '--no-progress',
            '-j', '1', '-o', str(out)]
    first = _start_ingest(args)
    try:
        _wait_for(_holds_lock(out, first.pid), first)
        os.killpg(first.pid, signal.SIGSTOP)  # hold it mid-run: the overlap is certain
        second = ptr(*args)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2, second.stderr
    line = one_line(second.stderr)
    assert line.startswith(f'ptr ingest: error: {out}: pid {first.pid} (ptr ingest'), line
    assert 'is writing here' in line
    _assert_whole(out, len(inputs['bags']))


def test_a_killed_writer_does_not_block_the_next(inputs: dict[str, Any], tmp_path: Path) -> None:
    """SIGKILL the writer (and its workers) mid-run: the next one takes the lock at once, holds
    it against a third, cleans up and completes the dataset."""
    out = tmp_path / 'ds'
    args = ['ingest', *map(str, inputs['bags']), '-p', str(inputs['profile']), '--no-progress',
            '-o', str(out)]
    killed = _start_ingest([*args, '-j', '2'])
    _wait_for(lambda: len(_episodes_on_disk(out)) >= 2, killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    _wait_group_gone(killed.pid)
    assert (out / LOCK_NAME).read_text().startswith(f'pid {killed.pid} ')  # left behind

    second = _start_ingest([*args, '-j', '1'])
    try:
        _wait_for(_holds_lock(out, second.pid), second, timeout=30)
        os.killpg(second.pid, signal.SIGSTOP)
        third = ptr(*args)
    finally:
        os.killpg(second.pid, signal.SIGCONT)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert third.returncode == 2
    assert f'pid {second.pid} (ptr ingest' in one_line(third.stderr)
    _assert_whole(out, len(inputs['bags']))


# -- item 9: read commands never write -------------------------------------------------------

def _unindexed(inputs: dict[str, Any], dst: Path) -> tuple[Path, str]:
    """A dataset whose last episode was written but not indexed (its writer was killed)."""
    ds = copy_dataset(inputs, dst)
    manifest = json.loads((ds / 'manifest.json').read_text())
    lost = manifest['episodes'].pop()['id']
    (ds / 'manifest.json').write_text(json.dumps(manifest, indent=1))
    return ds, lost


def _check_warning(stderr: str, ds: Path, lost: str) -> None:
    """One warning line (once, however often the command opens the dataset), no other."""
    lines = [x for x in stderr.strip().splitlines() if not x.startswith('INFO ')]
    line = one_line('\n'.join(lines))
    assert f'{ds / "episodes"}: 1 episode folder(s) not in manifest.json ({lost})' in line, line
    assert 'the next `ptr ingest` into this folder' in line


def test_read_commands_never_write(inputs: dict[str, Any], tmp_path: Path) -> None:
    ds, lost = _unindexed(inputs, tmp_path / 'ds')
    manifest = ds / 'manifest.json'
    before, mtime = manifest.read_bytes(), manifest.stat().st_mtime_ns
    files = tree(ds)
    opened = Dataset.open(ds)
    assert lost not in opened.episode_ids
    assert len(opened) == 2
    for argv in (['inspect', str(ds)], ['report', str(ds), '--out', str(tmp_path / 'rep')],
                 ['export', str(ds), '--out', str(tmp_path / 'exp'), '--no-progress']):
        got = ptr(*argv)
        assert got.returncode == 0, got.stderr
        _check_warning(got.stderr, ds, lost)
    assert manifest.read_bytes() == before
    assert manifest.stat().st_mtime_ns == mtime
    assert tree(ds) == files  # no lock file, nothing adopted, nothing removed
    got = ptr('ingest', str(inputs['bags'][0]), '-p', str(inputs['profile']), '-o', str(ds),
              '--no-progress')  # the next writer adopts it
    assert got.returncode == 0, got.stderr
    assert lost in Dataset.open(ds).episode_ids


def test_read_commands_work_on_a_read_only_dataset(
    inputs: dict[str, Any], tmp_path: Path, mounts: None,
) -> None:
    """The issue: inspect, report (and train) crashed on a read-only dataset holding one."""
    ds, lost = _unindexed(inputs, tmp_path / 'ds')
    files = tree(ds)
    got = read_only(ds, [PTR, 'inspect', str(ds)])
    assert got.returncode == 0, got.stderr
    assert 'episodes: 2' in got.stdout
    _check_warning(got.stderr, ds, lost)
    got = read_only(ds, [PTR, 'report', str(ds), '--out', str(tmp_path / 'rep')])
    assert got.returncode == 0, got.stderr
    _check_warning(got.stderr, ds, lost)
    assert tree(ds) == files


# -- item 7 and 8: outputs that are not ours, --out a file or a dangling symlink -------------

def test_report_replaces_only_its_own_page(inputs: dict[str, Any], tmp_path: Path) -> None:
    ds = str(inputs['ds'])
    mine = tmp_path / 'site'
    mine.mkdir()
    (mine / 'index.html').write_text('<html>my own page</html>')
    got = ptr('report', ds, '--out', str(mine))
    assert got.returncode == 2
    assert one_line(got.stderr) == (
        f'ptr report: error: {mine / "index.html"}: is not a page ptr report wrote; ptr report '
        'replaces only its own index.html: remove it or choose another --out')
    assert (mine / 'index.html').read_text() == '<html>my own page</html>'
    assert sorted(p.name for p in mine.iterdir()) == ['index.html']

    ours = tmp_path / 'report'
    for _ in range(2):  # the second run replaces the page the first one wrote
        got = ptr('report', ds, '--out', str(ours))
        assert got.returncode == 0, got.stderr
    page = (ours / 'index.html').read_text()

    linked = tmp_path / 'linked'
    linked.mkdir()
    (linked / 'index.html').symlink_to(mine / 'index.html')
    victim = tmp_path / 'victim.html'
    victim.write_text(page)  # even a page of ours is not replaced through a symlink
    (linked / 'other').mkdir()
    (linked / 'other' / 'index.html').symlink_to(victim)
    for folder, target in ((linked, mine / 'index.html'), (linked / 'other', victim)):
        before = target.read_text()
        got = ptr('report', ds, '--out', str(folder))
        assert got.returncode == 2
        assert 'index.html: is a symlink; ptr report replaces only its own' in one_line(
            got.stderr)
        assert (folder / 'index.html').is_symlink()
        assert target.read_text() == before

    file = tmp_path / 'notes.txt'
    file.write_text('keep')
    got = ptr('report', ds, '--out', str(file))
    assert got.returncode == 2
    assert one_line(got.stderr) == (f'ptr report: error: {file}: is a file; --out is the folder '
                                    'to write index.html into')
    assert file.read_text() == 'keep'


def test_ingest_never_writes_through_a_planted_lock_symlink(
    inputs: dict[str, Any], tmp_path: Path,
) -> None:
    ds = copy_dataset(inputs, tmp_path / 'ds')
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    (ds / LOCK_NAME).unlink()
    (ds / LOCK_NAME).symlink_to(victim)
    got = ptr('ingest', str(inputs['bags'][6]), '-p', str(inputs['profile']), '-o', str(ds),
              '--no-progress')
    assert got.returncode == 2
    assert one_line(got.stderr) == (f'ptr ingest: error: {ds / LOCK_NAME}: is not a lock file ptr '
                                    'made (a symlink or a folder); remove it')
    assert victim.read_text() == 'precious'


def test_export_to_a_dangling_symlink_is_one_line(inputs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / 'exported'
    out.symlink_to(tmp_path / 'gone')
    got = ptr('export', str(inputs['ds']), '--out', str(out), '--no-progress')
    assert got.returncode == 2
    assert one_line(got.stderr) == (
        f'ptr export: error: {out}: is a symlink (to {tmp_path / "gone"}); export writes a new '
        'folder (remove it or choose another --out)')
    assert out.is_symlink()
    assert not (tmp_path / 'gone').exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['exported']


# -- item 8: full and read-only disks --------------------------------------------------------

def test_ingest_on_a_full_disk_stops_with_one_line(
    inputs: dict[str, Any], tmp_path: Path, mounts: None,
) -> None:
    """Room for about two episodes: they land and are indexed, the run stops at the third
    with one line, and no temp is left behind."""
    mnt = tmp_path / 'disk'
    got, after = on_tmpfs(mnt, '1m', [PTR, 'ingest', *map(str, inputs['bags'][:6]), '-p',
                                      str(inputs['profile']), '-o', str(mnt / 'ds'), '-j', '2',
                                      '--no-progress'])
    assert got.returncode == 2, got.stderr
    line = one_line(got.stderr)
    assert line.startswith(f'ptr ingest: error: {mnt / "ds"}: cannot write'), line
    assert 'No space left on device' in line or 'is the disk full?' in line
    assert temps(after) == []
    ds = Dataset.open(after / 'ds')
    assert 1 <= len(ds) < 6
    assert _episodes_on_disk(after / 'ds') == set(ds.episode_ids)


def test_export_and_report_on_a_full_disk(
    inputs: dict[str, Any], tmp_path: Path, mounts: None,
) -> None:
    """One line each and nothing left: the report's temp was left on a full disk."""
    ds = str(inputs['ds'])
    for name, argv in (('export', ['export', ds, '--no-progress', '--out']),
                       ('report', ['report', ds, '--out'])):
        mnt = tmp_path / name
        got, after = on_tmpfs(mnt, '16k', [PTR, *argv, str(mnt / 'out')])
        assert got.returncode == 2, got.stderr
        line = one_line(got.stderr)
        assert line.startswith(f'ptr {name}: error: {mnt / "out"}'), line
        assert 'No space left on device' in line
        assert list(after.iterdir()) == []


@pytest.mark.parametrize('command', ['ingest', 'ingest-existing', 'export', 'report'])
def test_read_only_outputs_are_one_line(
    inputs: dict[str, Any], tmp_path: Path, mounts: None, command: str,
) -> None:
    mnt = tmp_path / 'ro'
    out = mnt / 'out'
    setup = ''
    ds = str(inputs['ds'])
    argv = {'export': [PTR, 'export', ds, '--no-progress', '--out', str(out)],
            'report': [PTR, 'report', ds, '--out', str(out)]}.get(command)
    if argv is None:
        argv = [PTR, 'ingest', str(inputs['bags'][5]), '-p', str(inputs['profile']), '-o',
                str(out), '--no-progress']
    if command == 'ingest-existing':  # a dataset already there, on a disk now read-only
        setup = f'cp -a {shlex.quote(ds)} {shlex.quote(str(out))}'
    got, after = on_tmpfs(mnt, '4m', argv, setup=setup, ro=True)
    assert got.returncode == 2, got.stderr
    line = one_line(got.stderr)
    assert re.match(rf'ptr \w+: error: {re.escape(str(out))}\S*: cannot write|'
                    rf'ptr export: error: {re.escape(str(out))}: export failed', line), line
    assert 'Read-only file system' in line
    assert tree(after / 'out') == tree(Path(ds)) if setup else list(after.iterdir()) == []


# -- item 10: the real PR2 bag, cut at 300 kB ------------------------------------------------

def _cut_pr2(tmp_path: Path) -> Path:
    cut = tmp_path / 'pr2_cut.bag'
    cut.write_bytes(PR2.read_bytes()[:300_000])
    return cut


@needs_pr2
def test_a_cut_pr2_bag_salvages_and_leaves_no_temp(tmp_path: Path) -> None:
    cut = _cut_pr2(tmp_path)
    got = ptr('inspect', str(cut))
    assert got.returncode == 2
    assert one_line(got.stderr).endswith('ingest the readable part with --salvage')
    system_tmp = tmp_path / 'tmp'
    system_tmp.mkdir()
    out = tmp_path / 'ds'
    for _ in range(2):  # the second run: skipped (same content), still nothing left
        got = ptr('ingest', str(cut), '--salvage', '-p', str(PR2_PROFILE), '-o', str(out),
                  '--no-progress', env={**ENV, 'TMPDIR': str(system_tmp)})
        assert got.returncode == 0, got.stderr
        assert list(system_tmp.iterdir()) == []
        assert temps(out) == []
    (ep,) = Dataset.open(out).episodes()
    assert ep.length > 50
    assert 'lost everything after byte' in ep.sync_report['salvaged']
    assert ep.state.shape[1] == 8


@needs_pr2
def test_a_failed_salvage_removes_its_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    from bag_tools import salvage
    from bag_tools.errors import BagOpenError

    def disk_full(*_: object) -> None:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(salvage, '_write_ros1', disk_full)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    with pytest.raises(BagOpenError, match=rf'pr2_cut.bag: cannot salvage: writing '
                       rf'{re.escape(str(scratch))}/ptr-salvage-\w+: No space left on device'):
        salvage.salvage_ros1(_cut_pr2(tmp_path), scratch=scratch)
    assert list(scratch.iterdir()) == []


@needs_pr2
def test_salvage_on_a_full_disk(tmp_path: Path, mounts: None) -> None:
    """The salvaged copy is written beside the dataset: a full disk fails the bag with one
    line naming where, and the run leaves nothing there."""
    cut = _cut_pr2(tmp_path)
    mnt = tmp_path / 'disk'
    got, after = on_tmpfs(mnt, '128k', [PTR, 'ingest', str(cut), '--salvage', '-p',
                                        str(PR2_PROFILE), '-o', str(mnt / 'ds'),
                                        '--no-progress'])
    assert got.returncode == 1, got.stderr
    line = one_line(got.stderr)
    assert f'{cut}: cannot salvage: writing {mnt / "ds" / "episodes"}/.tmp-scratch-' in line
    assert 'No space left on device' in line
    assert list(after.iterdir()) == []


# -- item 11: leftovers of killed writers ----------------------------------------------------

def test_a_killed_export_leaves_nothing_for_long(inputs: dict[str, Any], tmp_path: Path) -> None:
    ds = tmp_path / 'ds'
    assert ingest(inputs['bags'], RobotProfile.from_dict(
        yaml.safe_load(inputs['profile'].read_text()), source='p'), ds).ok
    out = tmp_path / 'exported'
    user = tmp_path / '.exported.tmp-999999999'  # a look-alike without our marker: not ours
    user.mkdir()
    proc = subprocess.Popen([PTR, 'export', str(ds), '--out', str(out), '--no-progress'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=ENV)
    tmp = tmp_path / f'.exported.tmp-{proc.pid}'
    _wait_for(lambda: (tmp / TEMP_MARKER).is_file(), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert tmp.is_dir()  # what the issue found there forever
    got = ptr('export', str(ds), '--out', str(out), '--no-progress')
    assert got.returncode == 0, got.stderr
    assert not tmp.exists()
    assert user.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == [user.name, 'ds', 'exported']
    assert not (out / TEMP_MARKER).exists()


def test_a_killed_reports_temp_goes_and_a_users_file_stays(
    inputs: dict[str, Any], tmp_path: Path,
) -> None:
    out = tmp_path / 'report'
    assert ptr('report', str(inputs['ds']), '--out', str(out)).returncode == 0
    page = (out / 'index.html').read_text()
    dead = out / '.index.html.999999999.tmp'
    dead.write_text(page[:300])  # killed while writing
    users = out / '.index.html.999999998.tmp'
    users.write_text('my notes')
    got = ptr('report', str(inputs['ds']), '--out', str(out))
    assert got.returncode == 0, got.stderr
    assert sorted(p.name for p in out.iterdir()) == [users.name, 'index.html']


# -- item 3: an episode's grid is bounded before it is allocated -----------------------------

@needs_pr2
def test_a_grid_too_long_is_refused_before_allocation(tmp_path: Path) -> None:
    """The issue's profile (rate_hz 1e9) on the real PR2 bag, past the profile's own bound
    (built in code): 1.35e10 steps, 108 GB of timestamps alone. One line, no allocation."""
    script = (
        'import dataclasses, resource\n'
        'resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n'
        'from bag_tools.episodes import bag_to_episodes\n'
        'from bag_tools.errors import BagToolsError\n'
        'from bag_tools.profile import load_profile\n'
        f'p = dataclasses.replace(load_profile({str(PR2_PROFILE)!r}), rate_hz=1e9)\n'
        'try:\n'
        f'    bag_to_episodes({str(PR2)!r}, p)\n'
        'except BagToolsError as err:\n'
        '    print(err)\n'
    )
    got = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                         timeout=120, check=False, env=ENV)
    assert got.returncode == 0, got.stderr[-2000:]
    assert re.fullmatch(rf'{re.escape(str(PR2))}: rate_hz 1e\+09 over 1[0-9]\.\d s of '
                        r'/joint_states is 1\d{10} grid steps, more than the 10000000 an episode '
                        r'may have; lower rate_hz or split the recording \(episodes\.max_gap_s, '
                        r'episodes\.marker_topic\)\n', got.stdout), got.stdout


def test_a_long_recording_at_1khz_is_one_line(tmp_path: Path) -> None:
    """Within the profile's bound (1 kHz), 2.8 hours without a gap is 10M steps: refused."""
    c = BagContent()
    for i in range(10_011):  # one joint state a second for 10010 s
        c.joint_state('/joint_states', T0 + i * 1_000_000_000, ['j1', 'j2', 'j3'],
                      joint_value(float(i)))
    bag = write_bag(c, tmp_path / 'long', 'mcap')
    prof = arm_profile(cameras={}, image_size=None, action={'source': 'next_state'},
                       rate_hz=1000.0, episodes={'max_gap_s': 5.0})
    prof_file = tmp_path / 'p.yaml'
    prof_file.write_text(yaml.safe_dump(prof))
    got = ptr('ingest', str(bag), '-p', str(prof_file), '-o', str(tmp_path / 'ds'),
              '--no-progress', limit_gb=3)
    assert got.returncode == 1, got.stderr[-2000:]
    assert one_line(got.stderr) == (
        f'failed: {bag}: rate_hz 1000 over 10010.0 s of /joint_states is 10010001 grid steps, '
        'more than the 10000000 an episode may have; lower rate_hz or split the recording '
        '(episodes.max_gap_s, episodes.marker_topic)')
    assert not (tmp_path / 'ds').exists()


@pytest.fixture(autouse=True)
def _no_system_temp_leftovers() -> Iterator[None]:
    """No test here may leave a salvage folder in the system's temp directory."""
    before = set(Path(tempfile.gettempdir()).glob('ptr-salvage-*'))
    yield
    assert set(Path(tempfile.gettempdir()).glob('ptr-salvage-*')) <= before
