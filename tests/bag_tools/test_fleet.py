"""Fleet ingest on a real Ray instance (loopback, no dashboard, no usage stats, 2 CPUs).

The same bags through Ray and through the local pool give the same dataset, byte for byte; a
worker killed mid-task is retried and changes nothing; a failing bag is one line and the rest
land; ``max_invalid`` fails a bag there as here; a LeRobot folder imports through Ray alike;
without ``--ray`` Ray is never imported.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from armbags import T0, arm_content, arm_profile, frame_pixels, snapshot
from bagfactory import encode_jpeg, write_bag

from bag_tools.dataset import Dataset
from bag_tools.fleet import LOOPBACK_ONLY
from bag_tools.ingest import BagResult, BagSource, BagStatus, ingest, ingest_source
from bag_tools.lerobot.importer import import_lerobot
from bag_tools.profile import RobotProfile
from bag_tools.trust import dataset_content_hash
from ptr_cli.main import main

os.environ['RAY_USAGE_STATS_ENABLED'] = '0'
# Ray 2.60 heads ask for the token they saved in ~/.ray/auth_token; a driver joining one by
# address sends it only in token mode, which Ray reads when it is imported (a local instance
# turns the mode on for its process anyway).
os.environ.setdefault('RAY_AUTH_MODE', 'token')
os.environ.update(LOOPBACK_ONLY)  # the local instances started in this process, before the import
ray = pytest.importorskip('ray', reason='Ray is installed by the set-up (the fleet extra)')

#: A local Ray instance in its own process: the head the ADDRESS tests connect to.
HEAD = """
import os, sys
os.environ['RAY_USAGE_STATS_ENABLED'] = '0'
os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'  # fleet.LOOPBACK_ONLY: listen on 127.0.0.1
import ray
ray.init(_node_ip_address='127.0.0.1', include_dashboard=False, num_cpus=2,
         logging_level='WARNING')
print(ray.get_runtime_context().gcs_address.rsplit(':', 1)[1], flush=True)
sys.stdin.read()  # until the test closes it
ray.shutdown()
"""


@dataclass(frozen=True)
class KillOnce(BagSource):
    """Test-only conversion: the first bag's worker writes its episodes, then SIGKILLs itself
    before it can report (once: ``marker`` remembers), so Ray retries the task."""

    marker: Path = Path()

    def convert(self, index: int, out: Path, done: frozenset[str]) -> BagResult:
        res = super().convert(index, out, done)
        if index == 0 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return res


@dataclass(frozen=True)
class KillAlways(BagSource):
    """Test-only conversion: the first bag's worker dies every time (SIGKILL)."""

    def convert(self, index: int, out: Path, done: frozenset[str]) -> BagResult:
        if index == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().convert(index, out, done)


@pytest.fixture(scope='module')
def bags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four good bags (three containers) and one without its camera topic; a profile file;
    the local ingest of the good ones (-j 2) as the reference."""
    root = tmp_path_factory.mktemp('fleet')
    good = [write_bag(arm_content(duration_s=2.0 + 0.5 * i, tags={'ptr.source': f's{i}'}),
                      root / 'bags' / f'b{i}', ('mcap', 'sqlite3', 'ros1', 'mcap')[i])
            for i in range(4)]
    bad = write_bag(arm_content(camera=False), root / 'bags' / 'nocam', 'mcap')
    profile = root / 'arm3.yaml'
    profile.write_text(yaml.safe_dump(arm_profile()))
    reference = root / 'local'
    result = ingest(good, RobotProfile.from_dict(arm_profile(), source='test'), reference,
                    workers=2)
    assert result.ok
    assert len(Dataset.open(reference)) == 4
    return {'root': root, 'good': good, 'bad': bad, 'profile': profile, 'reference': reference}


HEAD_PROCS: list[subprocess.Popen[str]] = []


@pytest.fixture(scope='module')
def head() -> Iterator[str]:
    """``127.0.0.1:<port>`` of a local Ray head with 2 CPUs (stopped after the module)."""
    proc = subprocess.Popen([sys.executable, '-c', HEAD], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    HEAD_PROCS[:] = [proc]
    try:
        port = proc.stdout.readline().strip() if proc.stdout else ''
        assert port.isdigit(), 'the Ray head did not start'
        yield f'127.0.0.1:{port}'
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _listening(root: int) -> set[str]:
    """``address:port`` of every TCP socket listening in process ``root`` and its descendants
    (read from /proc: the inodes of their socket fds against /proc/net/tcp and tcp6)."""
    parents: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / 'stat').read_text()
                parents.setdefault(int(stat.rsplit(')', 1)[1].split()[1]), []).append(
                    int(entry.name))
    pids, todo = set(), [root]
    while todo:
        pid = todo.pop()
        pids.add(pid)
        todo.extend(parents.get(pid, []))
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f'/proc/{pid}/fd').iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith('socket:['):
                        inodes.add(link[8:-1])
    found = set()
    for table in ('tcp', 'tcp6'):
        for line in Path(f'/proc/net/{table}').read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == '0A' and cols[9] in inodes:  # 0A: LISTEN
                host, port = cols[1].split(':')
                raw = bytes.fromhex(host)
                words = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(f'{ipaddress.ip_address(words)}:{int(port, 16)}')
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rsplit(':', 1)[0])
    mapped = getattr(ip, 'ipv4_mapped', None)
    return bool((mapped or ip).is_loopback)


def test_a_local_instance_listens_on_loopback_only(head: str) -> None:
    """Nothing of a local Ray instance is reachable off the machine: its GCS, raylet, object
    manager, workers and agents listen on 127.0.0.1 alone."""
    assert HEAD_PROCS, 'the Ray head did not start'
    sockets = _listening(HEAD_PROCS[0].pid)
    assert len(sockets) >= 3, sockets  # the GCS, the raylet, a worker at least
    assert [s for s in sockets if not _loopback(s)] == []


@pytest.fixture
def joined(head: str) -> str:
    """The head's address (joined in token mode, see the top of this module)."""
    return head


def test_ray_gives_the_local_dataset_and_a_bad_bag_is_one_line(
        bags: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """`ptr ingest --ray -j 2` (a local instance of its own): the local run's bytes."""
    out = bags['root'] / 'ray_local'
    capsys.readouterr()
    code = main(['ingest', *map(str, bags['good']), str(bags['bad']), '-p', str(bags['profile']),
                 '--out', str(out), '--ray', '-j', '2', '--no-progress'])
    captured = capsys.readouterr()
    assert code == 1  # one bag failed
    assert '4 bag(s) ingested, 0 skipped, 1 failed' in captured.out
    named = [line for line in captured.err.splitlines() if str(bags['bad']) in line]
    assert len(named) == 1, captured.err
    assert named[0].startswith(f'failed: {bags["bad"]}: ')
    assert '/cam/image_raw/compressed' in named[0]
    assert snapshot(out) == snapshot(bags['reference'])
    assert (dataset_content_hash(Dataset.open(out))
            == dataset_content_hash(Dataset.open(bags['reference'])))
    assert not ray.is_initialized()  # the instance it started is gone


def test_a_killed_worker_is_retried_and_nothing_changes(
        bags: dict[str, Any], joined: str) -> None:
    """The first bag's worker dies after renaming its episodes into place; Ray's retry keeps
    them; re-running through Ray skips every bag."""
    from bag_tools.fleet import ray_runner

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # KillOnce to the workers
    marker = bags['root'] / 'killed-once'
    out = bags['root'] / 'ray_killed'
    source = KillOnce(tuple(bags['good']), RobotProfile.from_dict(arm_profile(), source='test'),
                      marker=marker)
    result = ingest_source(source, out, runner=ray_runner(joined))
    assert marker.is_file()  # a worker did die
    assert [b.status for b in result.bags] == [BagStatus.OK] * 4, result.bags
    assert snapshot(out) == snapshot(bags['reference'])
    again = ingest(bags['good'], source.robot, out, runner=ray_runner(joined))
    assert [b.status for b in again.bags] == [BagStatus.SKIPPED] * 4
    assert snapshot(out) == snapshot(bags['reference'])


def short_camera_bag(folder: Path) -> Path:
    """A 3 s bag whose camera stops after 0.5 s: the camera is invalid at 77 % of the grid."""
    c = arm_content(camera=False)
    for k in range(8):
        c.compressed_image('/cam/image_raw/compressed', T0 + round(k / 15 * 1e9),
                           encode_jpeg(frame_pixels(k)))
    return write_bag(c, folder / 'short_camera', 'mcap')


def test_max_invalid_fails_the_bag_through_ray_as_locally(
        bags: dict[str, Any], tmp_path: Path, joined: str) -> None:
    from bag_tools.fleet import ray_runner

    short = short_camera_bag(tmp_path)
    profile = RobotProfile.from_dict(arm_profile(), source='test')
    runs = {'local': ingest([bags['good'][0], short], profile, tmp_path / 'local',
                            max_invalid=0.5),
            'ray': ingest([bags['good'][0], short], profile, tmp_path / 'ray', max_invalid=0.5,
                          runner=ray_runner(joined))}
    for name, result in runs.items():
        assert [b.status for b in result.bags] == [BagStatus.OK, BagStatus.FAILED], name
        reason = result.bags[1].reason
        assert reason.startswith(f'{short}: over max_invalid 0.5: stream camera:wrist'), reason
        assert '\n' not in reason
    assert snapshot(tmp_path / 'ray') == snapshot(tmp_path / 'local')
    assert len(Dataset.open(tmp_path / 'ray')) == 1  # nothing of the failed bag


def test_lerobot_episodes_through_ray(lerobot_data: Path, tmp_path: Path, joined: str) -> None:
    from bag_tools.fleet import ray_runner

    src = lerobot_data / 'reachy2_v30_apple_storage'
    local = import_lerobot(src, None, tmp_path / 'local')
    remote = import_lerobot(src, None, tmp_path / 'ray', runner=ray_runner(joined))
    assert [b.status for b in remote.bags] == [BagStatus.OK] * 3
    assert [b.path for b in remote.bags] == [b.path for b in local.bags]
    assert snapshot(tmp_path / 'ray') == snapshot(tmp_path / 'local')


def test_without_ray_flag_ray_is_never_imported(bags: dict[str, Any], tmp_path: Path) -> None:
    code = ('import sys\nfrom ptr_cli.main import main\n'
            f'code = main(["ingest", {str(bags["good"][0])!r}, "-p", {str(bags["profile"])!r}, '
            f'"--out", {str(tmp_path / "ds")!r}, "--no-progress"])\n'
            'assert code == 0, code\n'
            'assert "ray" not in sys.modules, "ray imported"\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_a_unit_whose_worker_always_dies_fails_alone(bags: dict[str, Any], joined: str) -> None:
    """Ray gives up after RETRIES tries: that bag is one failure line, the other lands."""
    from bag_tools.fleet import RETRIES, ray_runner

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    source = KillAlways(tuple(bags['good'][:2]),
                        RobotProfile.from_dict(arm_profile(), source='test'))
    result = ingest_source(source, bags['root'] / 'ray_always', runner=ray_runner(joined))
    assert [b.status for b in result.bags] == [BagStatus.FAILED, BagStatus.OK]
    reason = result.bags[0].reason
    assert reason.startswith(f'{bags["good"][0]}: Ray task failed after {RETRIES} retries: '
                             'WorkerCrashedError'), reason
    assert '\n' not in reason
    assert len(Dataset.open(bags['root'] / 'ray_always')) == 1


@pytest.mark.slow
def test_ctrl_c_stops_the_tasks_and_the_next_run_resumes(
        bags: dict[str, Any], tmp_path: Path) -> None:
    """SIGINT to `ptr ingest --ray` (its process group, as a terminal sends it) mid-run: exit
    130 with one line, no Ray process or temp left; the next run skips what landed and ends
    with the local run's dataset."""
    import time

    out = tmp_path / 'out'
    many = [write_bag(arm_content(duration_s=6.0, js_hz=200.0, tags={'ptr.source': f'm{i}'}),
                      tmp_path / 'bags' / f'm{i}', 'mcap') for i in range(10)]
    args = [str(Path(sys.executable).with_name('ptr')), 'ingest', *map(str, many), '-p',
            str(bags['profile']), '--out', str(out), '--ray', '-j', '2', '--no-progress']
    proc = subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    episodes = out / 'episodes'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if episodes.is_dir() and sum(not p.name.startswith('.') for p in episodes.iterdir()) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, 'ingest finished before it could be interrupted'
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == 'ptr ingest: interrupted'
    assert not [p.name for p in episodes.iterdir() if p.name.startswith('.')]
    resumed = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert 'skipped' in resumed.stdout
    reference = tmp_path / 'local'
    assert ingest(many, RobotProfile.from_dict(arm_profile(), source='test'), reference).ok
    assert snapshot(out) == snapshot(reference)
