"""The cadence log without ROS: each window of the cadence report as one whole JSON line, the
window in progress on close, holds that are no period, several runs appended to one file, and
the reader's torn-line warning and one-line errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ptr_ros.cadence import (
    CADENCE_KEYS,
    CADENCE_SCHEMA,
    CadenceLog,
    CadenceLogError,
    CadenceReport,
    CadenceWindow,
    read_cadence_log,
)

REPO = Path(__file__).resolve().parents[2]
T = 0.1  # control period (s)


def report(path: Path, *, window_s: float = 1.0, horizon_s: float | None = 0.4,
           checkpoint: str = 'runs/x/final') -> CadenceReport:
    log = CadenceLog(path, period_s=T, window_s=window_s, horizon_s=horizon_s,
                     checkpoint=checkpoint, node='/policy_node')
    return CadenceReport(T, window_s, log=log)


def ticks(rep: CadenceReport, t0: float, n: int, *, age: float = 0.02) -> None:
    """``n`` ticks from ``t0``: each late 1 ms, an observation ``age`` s old, a command."""
    for k in range(n):
        t = t0 + k * T
        rep.add('tick_late_ms', 0.001, t)
        rep.add('obs_age_ms', age, t)
        rep.publish(t + 0.002)


def test_each_window_is_one_whole_line_and_the_one_in_progress_is_written_on_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / 'logs' / 'node' / 'cadence.jsonl'  # parent folders are created
    rep = report(path)
    t0 = time.monotonic() - 5.0
    ticks(rep, t0, 5)  # 2.5 windows of 1 s, in time order
    rep.add('inference_ms', 0.050, t0 + 0.45)
    ticks(rep, t0 + 0.5, 10)
    rep.overrun(3, t0 + 1.45)
    ticks(rep, t0 + 1.5, 10)
    rep.close()
    raw = path.read_bytes()
    assert raw.endswith(b'\n')
    assert len(raw.splitlines()) == 3
    windows = read_cadence_log(path)
    assert [w['complete'] for w in windows] == [True, True, False]
    assert [w['ticks'] for w in windows] == [10, 10, 5]
    first, second, last = windows
    assert first['schema'] == CADENCE_SCHEMA
    assert first['rate_hz'] == pytest.approx(10.0, rel=1e-6)
    assert first['window_s'] == 1.0
    assert first['horizon_ms'] == pytest.approx(400.0, rel=1e-6)
    assert first['checkpoint'] == 'runs/x/final'
    assert first['node'] == '/policy_node'
    assert first['run'] == last['run']
    assert first['obs_age_ms'] == {'mean': pytest.approx(20.0, rel=1e-6),
                                   'max': pytest.approx(20.0, rel=1e-6), 'count': 10}
    assert first['inference_ms']['max'] == pytest.approx(50.0, rel=1e-6)
    assert second['inference_ms'] == {'mean': None, 'max': None, 'count': 0}
    assert first['period_ms']['mean'] == pytest.approx(100.0, rel=1e-6)
    assert first['period_jitter_p99_ms'] == pytest.approx(0.0, abs=1e-3)
    assert first['max_gap_ms'] == pytest.approx(100.0, rel=1e-6)
    assert second['overruns'] == 3
    assert first['overruns'] == 0
    # the period across a window boundary counts in the new window: 10 periods, not 9
    assert second['period_ms']['count'] == 10
    assert second['commands'] == 10
    assert first['duration_s'] == pytest.approx(1.0, rel=1e-6)
    assert last['duration_s'] == pytest.approx(0.402, rel=1e-6)  # to its last sample
    assert second['start_unix'] - first['start_unix'] == pytest.approx(1.0, rel=1e-3)
    assert abs(first['start_unix'] - (time.time() - 5.0)) < 60.0  # wall clock, not monotonic
    assert first['start'].startswith(time.strftime('%Y-', time.gmtime(first['start_unix'])))


def test_a_hold_is_no_period_and_a_late_command_is_the_longest_gap(tmp_path: Path) -> None:
    path = tmp_path / 'cadence.jsonl'
    rep = report(path, window_s=60.0)
    t0 = time.monotonic()
    ticks(rep, t0, 5)
    rep.hold()  # stopped by the operator for 20 s: not a publish period
    ticks(rep, t0 + 20.0, 5)
    rep.publish(t0 + 20.0 + 4 * T + 0.702)  # one command 700 ms after the one before
    rep.close()
    (window,) = read_cadence_log(path)
    assert window['commands'] == 11
    assert window['period_ms']['count'] == 9  # 4 + 4 + the late one; none across the hold
    assert window['max_gap_ms'] == pytest.approx(700.0, rel=1e-6)
    assert window['period_jitter_p99_ms'] > 100.0


def test_an_empty_window_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / 'cadence.jsonl'
    rep = report(path)
    rep.end_window()  # deactivated before a single tick
    rep.close()
    assert path.read_bytes() == b''
    assert read_cadence_log(path) == []


def test_runs_are_appended_never_truncated(tmp_path: Path) -> None:
    path = tmp_path / 'cadence.jsonl'
    runs = []
    for n in range(2):
        rep = report(path, checkpoint=f'ckpt{n}')
        runs.append(rep.log.meta['run'] if rep.log else '')
        ticks(rep, time.monotonic(), 12)
        size = path.stat().st_size
        rep.close()
        assert path.stat().st_size > size
    windows = read_cadence_log(path)
    assert [w['checkpoint'] for w in windows] == ['ckpt0'] * 2 + ['ckpt1'] * 2
    assert [w['run'] for w in windows] == [runs[0]] * 2 + [runs[1]] * 2
    assert runs[0] != runs[1]


def test_a_torn_last_line_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / 'cadence.jsonl'
    rep = report(path)
    ticks(rep, time.monotonic(), 25)
    rep.close()
    whole = path.read_text()
    path.write_text(whole + whole.splitlines()[0][:57])  # a killed write's first bytes
    with caplog.at_level(logging.WARNING, logger='ptr_ros.cadence'):
        windows = read_cadence_log(path)
    assert len(windows) == 3
    assert f'{path}: line 4 is torn' in caplog.text
    path.write_text(whole + whole.splitlines()[0])  # whole but for its newline: kept
    assert len(read_cadence_log(path)) == 4


@pytest.mark.parametrize(('text', 'match'), [
    ('{"schema": "ptr.metrics/1"}\n', r"line 1: schema 'ptr.metrics/1', expected "
                                      r"'ptr.cadence/1'"),
    ('step,loss\n1,0.5\n', r'line 1: not JSON'),
    ('a plain text file with no newline', r'line 1: not JSON'),
    ('[1, 2]\n', r'line 1: schema None'),
    (f'{{"schema": "{CADENCE_SCHEMA}", "run": "r"}}\n', r"line 1: no field 'run_started'"),
])
def test_another_file_is_a_one_line_error_naming_it(tmp_path: Path, text: str,
                                                     match: str) -> None:
    path = tmp_path / 'other.jsonl'
    path.write_text(text)
    with pytest.raises(CadenceLogError, match=match) as err:
        read_cadence_log(path)
    assert str(err.value).startswith(f'{path}: ')
    assert '\n' not in str(err.value)


def test_a_missing_log_and_a_bad_target_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CadenceLogError, match='cannot read the cadence log: No such file'):
        read_cadence_log(tmp_path / 'none.jsonl')
    other = tmp_path / 'notes.txt'
    other.write_text('my notes\n')
    with pytest.raises(CadenceLogError, match=f'{other}: exists and is not a cadence log'):
        CadenceLog(other, period_s=T, window_s=1.0)
    assert other.read_text() == 'my notes\n'  # untouched
    with pytest.raises(CadenceLogError, match=f'{tmp_path}: cannot open the cadence log'):
        CadenceLog(tmp_path, period_s=T, window_s=1.0)


def test_the_line_schema_names_every_cadence_key() -> None:
    assert set(CADENCE_KEYS) <= set(CadenceWindow.__annotations__)


KILLED_WRITER = """
import sys, time
from ptr_ros.cadence import CadenceLog, CadenceReport
rep = CadenceReport(0.001, 0.002, log=CadenceLog(sys.argv[1], period_s=0.001, window_s=0.002))
t = time.monotonic()
print('ready', flush=True)
while True:
    t += 0.001
    rep.add('tick_late_ms', 0.0001, t)
    rep.publish(t)
"""


def test_a_killed_node_leaves_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / 'cadence.jsonl'
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.Popen([sys.executable, '-c', KILLED_WRITER, str(path)], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == 'ready'
        deadline = time.monotonic() + 60
        while (not path.exists() or path.stat().st_size < 20_000) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    windows = read_cadence_log(path)  # at most a torn last line, skipped
    assert len(windows) > 20
    lines = path.read_text().split('\n')
    for line in lines[:-1]:
        assert json.loads(line)['schema'] == CADENCE_SCHEMA
