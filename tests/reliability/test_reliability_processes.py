"""A killed or interrupted ingest leaves no process behind (real processes, real signals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from armbags import arm_content, arm_profile
from bagfactory import write_bag

from bag_tools.dataset import Dataset

PTR = str(Path(sys.executable).with_name('ptr'))
pytestmark = pytest.mark.skipif(not Path('/proc/self/stat').exists(), reason='needs /proc')


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[1], []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            if kid not in out:
                out.add(kid)
                todo.append(kid)
    return out


def running(pids: set[int]) -> set[int]:
    return {p for p in pids if (st := _stat(p)) is not None and st[0] not in ('Z', 'X')}


def wait_gone(pids: set[int], timeout: float = 15.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while running(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return running(pids)


@pytest.fixture(scope='module')
def job(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """An ingest with enough work that it is still running when the signal comes."""
    root = tmp_path_factory.mktemp('bags')
    bags = [write_bag(arm_content(duration_s=8.0, js_hz=100.0, cam_hz=30.0,
                                  tags={'ptr.source': f's{i}'}), root / f'b{i}', 'mcap')
            for i in range(4)]
    profile = root / 'arm3.yaml'
    profile.write_text(yaml.safe_dump(arm_profile(image_size=[96, 128])))
    return ['ingest', *map(str, bags), '-p', str(profile), '-j', '2', '--no-progress']


def start(job: list[str], out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([PTR, *job, '-o', str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(proc: subprocess.Popen[str], n: int, timeout: float = 60.0) -> set[int]:
    """Poll until ``proc`` has ``n`` live descendants; return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        kids = running(descendants(proc.pid))
        if len(kids) >= n:
            return kids
        time.sleep(0.005)
    pytest.fail(f'ingest never had {n} helper processes (exit {proc.poll()})')


def test_kill_9_of_ingest_leaves_no_process(tmp_path: Path, job: list[str]) -> None:
    """The issue's case: forkserver, workers and resource tracker outlived a kill -9 (ppid 1)."""
    proc = start(job, tmp_path / 'ds')
    helpers = wait_for(proc, 4)  # resource tracker, fork server, two workers
    proc.kill()  # the parent only, as `kill -9 PID` does
    proc.communicate()
    assert wait_gone(helpers) == set()
    assert wait_gone(descendants(1) & helpers) == set()
    # and the next run finishes the job
    done = subprocess.run([PTR, *job, '-o', str(tmp_path / 'ds')], capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert len(Dataset.open(tmp_path / 'ds')) == 4


@pytest.mark.parametrize('when', [2, 4])  # helpers started: fork server starting / workers up
def test_ctrl_c_is_one_line_and_leaves_nothing(tmp_path: Path, job: list[str], when: int) -> None:
    out = tmp_path / 'ds'
    proc = start(job, out)
    helpers = wait_for(proc, when)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ['ptr ingest: interrupted'], stderr
    assert wait_gone(helpers | descendants(proc.pid)) == set()
    if out.exists():  # whatever landed is a valid dataset a re-run continues
        Dataset.open(out)
    done = subprocess.run([PTR, *job, '-o', str(out)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def test_the_watchdog_alone_ends_an_orphan(tmp_path: Path) -> None:
    """Where prctl is absent: the worker's watchdog notices its parent is gone."""
    child = textwrap.dedent("""
        import sys, time
        from bag_tools import lifetime
        lifetime.parent_death_signal = lambda *a: False  # as on a system without prctl
        lifetime.die_with(int(sys.argv[1]))
        print('armed', flush=True)
        time.sleep(60)
    """)
    parent = textwrap.dedent(f"""
        import os, subprocess, sys, time
        kid = subprocess.Popen([sys.executable, '-c', {child!r}, str(os.getpid())],
                               stdout=subprocess.PIPE, text=True)
        assert kid.stdout.readline().strip() == 'armed'
        print(kid.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, '-c', parent], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    kid = int(proc.stdout.readline())
    assert running({kid}) == {kid}
    proc.kill()
    proc.wait()
    assert wait_gone({kid}, timeout=5.0) == set()


@pytest.mark.parametrize('how', ['sigterm', 'ctrl_c'])
def test_a_benchmark_pool_ends_with_its_process(how: str) -> None:
    """`kill PID` of a benchmark (or recorder) left its spawn workers running their cell to the
    end; Ctrl-C, which reaches the whole group, must still stop them too."""
    holder = textwrap.dedent("""
        import time
        from ptr_sim.benchmark.stages import _pool_map
        _pool_map(time.sleep, [60.0, 60.0], 2, print)
    """)
    proc = subprocess.Popen([sys.executable, '-c', holder], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    helpers = wait_for(proc, 3)  # two workers and the resource tracker
    if how == 'sigterm':
        proc.terminate()  # the parent only, as `kill PID` does
    else:
        os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=60)
    assert wait_gone(helpers | descendants(proc.pid)) == set()
