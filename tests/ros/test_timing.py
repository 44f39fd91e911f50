"""The control tick's clock and the timing statistics, without ROS: one jitter statistic, the
per-minute cadence report, the horizon warning, ticks on a planned grid that skip, never burst."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ptr_ros.cadence import CadenceReport, horizon_warning, period_jitter
from ptr_ros.clock import ControlClock

T = 0.1


def test_jitter_is_two_sided_over_one_window() -> None:
    # One publication 30 ms late: the period before it is 30 ms long, the one after 30 ms short;
    # both count (a one-sided p99(period) - T would see only one of them).
    stamps = np.arange(101) * T
    stamps[50] += 0.030
    jit = period_jitter(stamps, T)
    assert jit.periods == 100
    assert jit.p99_ms == pytest.approx(30.0, rel=1e-6)
    assert jit.max_gap_ms == pytest.approx(130.0, rel=1e-6)
    early = np.arange(101) * T
    early[50] -= 0.030  # early publication: the same deviation
    assert period_jitter(early, T).p99_ms == pytest.approx(30.0, rel=1e-6)
    assert period_jitter(np.arange(101) * T, T).p99_ms == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(period_jitter([1.0], T).p99_ms)


def test_cadence_report_means_worsts_and_overruns_per_window() -> None:
    report = CadenceReport(T, window_s=60.0)
    for k, age in enumerate([0.010, 0.030, 0.020]):
        report.add('obs_age_ms', age, now=k * T)
    report.add('inference_ms', 0.050, now=0.0)
    report.add('tick_late_ms', 0.002, now=0.0)
    for t in (0.0, 0.1, 0.25, 0.35):
        report.publish(t)
    report.overrun(2, now=0.3)
    values = report.values()
    assert float(values['cadence.obs_age_ms.mean']) == pytest.approx(20.0, rel=1e-6)
    assert float(values['cadence.obs_age_ms.max']) == pytest.approx(30.0, rel=1e-6)
    assert float(values['cadence.inference_ms.max']) == pytest.approx(50.0, rel=1e-6)
    assert float(values['cadence.tick_late_ms.max']) == pytest.approx(2.0, rel=1e-6)
    assert values['cadence.publish_late_ms.max'] == 'n/a'
    assert float(values['cadence.period_ms.max']) == pytest.approx(150.0, rel=1e-6)
    assert float(values['cadence.max_gap_ms']) == pytest.approx(150.0, rel=1e-6)
    assert values['cadence.overruns'] == '2'
    assert 'cadence_last.overruns' not in values  # no full window yet
    # A minute later the window rolls: the last full one is reported beside the new one.
    report.publish(60.5)
    values = report.values()
    assert values['cadence_last.overruns'] == '2'
    assert float(values['cadence_last.obs_age_ms.max']) == pytest.approx(30.0, rel=1e-6)
    assert values['cadence.overruns'] == '0'
    # no hold between: the 60.15 s without a command is a period of the new window
    assert float(values['cadence.period_ms.mean']) == pytest.approx(60150.0, rel=1e-6)


def test_horizon_warning_names_both_numbers() -> None:
    assert horizon_warning(0.133, 100.0) == ''
    line = horizon_warning(0.133, 158.0)
    assert '133.0 ms' in line
    assert '158.0 ms' in line
    assert 'trajectory_points' in line
    assert horizon_warning(0.133, float('nan')) == ''


def run_clock(clock: ControlClock, done: threading.Event) -> None:
    clock.start()
    try:
        assert done.wait(30), 'the clock did not tick'
    finally:
        clock.stop()
    assert not clock.running


def test_clock_ticks_on_the_planned_grid() -> None:
    planned: list[float] = []
    called: list[float] = []
    done = threading.Event()

    def tick(t: float) -> None:
        called.append(time.monotonic())
        planned.append(t)
        if len(planned) == 10:
            done.set()

    run_clock(ControlClock(0.01, tick), done)
    steps = np.diff(planned[:10]) / 0.01
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)  # on the grid
    # whole periods compared as integers: a planned time is a float sum, so
    # 0.01 / 0.01 can come out as 0.9999999 on another clock reading
    assert (np.round(steps) >= 1).all()  # never two ticks for one deadline
    assert all(c >= p for c, p in zip(called, planned))  # never before its planned time


def test_a_stalled_tick_skips_the_missed_deadlines_never_bursts() -> None:
    planned: list[float] = []
    overruns: list[int] = []
    done = threading.Event()

    def tick(t: float) -> None:
        planned.append(t)
        if len(planned) == 3:
            time.sleep(0.055)  # 5.5 periods
        if len(planned) == 6:
            done.set()

    clock = ControlClock(0.01, tick, on_overrun=lambda n, now: overruns.append(n))
    run_clock(clock, done)
    assert sum(overruns) >= 4
    assert clock.skipped == sum(overruns)
    steps = np.diff(planned[:6]) / 0.01
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    assert np.round(steps[2]) >= 5  # the tick after the stall is planned past it, on the grid


def test_an_error_in_a_tick_is_reported_and_the_clock_goes_on() -> None:
    errors: list[BaseException] = []
    ticks: list[float] = []
    done = threading.Event()

    def tick(t: float) -> None:
        ticks.append(t)
        if len(ticks) == 1:
            raise RuntimeError('boom')
        done.set()

    run_clock(ControlClock(0.01, tick, on_error=errors.append), done)
    assert [str(e) for e in errors] == ['boom']
    assert len(ticks) >= 2
    with pytest.raises(ValueError, match='period'):
        ControlClock(0.0, tick)


def test_the_clock_thread_runs_sched_fifo_when_asked_or_says_why_not() -> None:
    import os

    policies: list[int] = []
    warnings: list[str] = []
    done = threading.Event()

    def tick(t: float) -> None:
        policies.append(os.sched_getscheduler(threading.get_native_id()))
        done.set()

    run_clock(ControlClock(0.01, tick, priority=10, warn=warnings.append), done)
    if warnings:  # no CAP_SYS_NICE here: normal priority, and a line that says how to fix it
        assert policies[0] == os.SCHED_OTHER
        assert 'CAP_SYS_NICE' in warnings[0]
    else:
        assert policies[0] == os.SCHED_FIFO
    default: list[int] = []
    done.clear()
    run_clock(ControlClock(0.01, lambda t: (default.append(os.sched_getscheduler(0)),
                                            done.set())), done)
    assert default[0] == os.SCHED_OTHER


def test_a_worker_waiting_on_a_process_runs_sched_fifo_when_allowed() -> None:
    import os

    from ptr_ros.clock import set_fifo
    from ptr_ros.worker import InferenceWorker

    allowed: list[str] = []
    probe = threading.Thread(target=lambda: allowed.append(set_fifo(10)))
    probe.start()
    probe.join()
    seen: list[int] = []
    done = threading.Event()
    for priority in (10, 0):
        done.clear()
        worker: InferenceWorker[int, int] = InferenceWorker(
            lambda job: os.sched_getscheduler(threading.get_native_id()),
            lambda job, policy: (seen.append(policy), done.set()),
            lambda job, err: None, nice=5, priority=priority)
        assert worker.submit(1)
        assert done.wait(30)
        worker.close()
    assert seen[0] == (os.SCHED_FIFO if allowed == [''] else os.SCHED_OTHER)
    assert seen[1] == os.SCHED_OTHER  # nice +5, never real-time, in a thread that computes
