"""The policy node writing its cadence log while it drives the sim arm, over real DDS: whole
windows at the control rate while enabled, the window in progress written on deactivate (and
nothing more while inactive), the file whole after the node stops on SIGINT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rosharness import Probe, SimRun, wait_for
from test_lifecycle import change
from test_policy_node import RATE, start_pair, wait_for_state

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from std_srvs.srv import SetBool

from ptr_ros.cadence import CADENCE_SCHEMA, read_cadence_log

pytestmark = pytest.mark.ros

WINDOW_S = 1.0


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_the_node_logs_whole_windows_and_the_one_in_progress_on_deactivate(
    sim_run: SimRun, launch_node: Any, probe: Probe, names: dict[str, str], tmp_path: Path,
) -> None:
    log = tmp_path / 'logs' / 'cadence.jsonl'
    sim, policy, _ = start_pair(launch_node, names, sim_run, policy_params={
        'cadence_log': str(log), 'cadence_window_s': WINDOW_S})
    node = names['policy']
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    wait_for_state(probe, node, 'disabled', procs=(sim, policy))
    assert probe.call(SetBool, f'/{node}/enable', SetBool.Request(data=True)).success
    enabled = time.time()
    # two full windows after the enable (the log's thread writes each as it rolls)
    wait_for(lambda: sum(w['start_unix'] > enabled for w in read_cadence_log(log)) >= 2
             if log.exists() else False, 60, 'two windows after enable')

    assert change(probe, node, Transition.TRANSITION_DEACTIVATE)
    wait_for(lambda: not read_cadence_log(log)[-1]['complete'], 30,
             'the window in progress written on deactivate')
    written = lines(log)
    time.sleep(2 * WINDOW_S)  # inactive: no tick, no window
    assert lines(log) == written
    assert policy.stop() == 0, policy.output()[-2000:]
    assert lines(log) == written  # the shutdown had no window in progress to add

    assert log.read_text().endswith('\n')
    windows = read_cadence_log(log)
    assert all(w['schema'] == CADENCE_SCHEMA for w in windows)
    assert [w['complete'] for w in windows] == [True] * (len(windows) - 1) + [False]
    assert len({w['run'] for w in windows}) == 1
    assert windows[0]['node'] == f'/{node}'
    assert windows[0]['checkpoint'] == str(sim_run.checkpoint)
    assert windows[0]['rate_hz'] == pytest.approx(RATE, rel=1e-6)
    assert windows[0]['horizon_ms'] == pytest.approx(4 / RATE * 1e3, rel=1e-6)  # K = 4
    driving = [w for w in windows if w['complete'] and w['start_unix'] > enabled]
    assert len(driving) >= 2
    for w in driving:
        assert w['ticks'] > 0
        assert w['duration_s'] == pytest.approx(WINDOW_S, rel=0.5)
        assert w['ticks'] == pytest.approx(WINDOW_S * RATE, rel=0.5)
        assert w['commands'] > 0
        assert w['period_ms']['mean'] == pytest.approx(1e3 / RATE, rel=0.25), w
        assert w['obs_age_ms']['max'] is not None
        assert w['obs_age_ms']['max'] >= w['obs_age_ms']['mean'] > 0
    starts = [w['start_unix'] for w in windows]
    assert starts == sorted(starts)
