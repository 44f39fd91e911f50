"""Chunk execution and temporal ensembling, the worker thread and the observation history."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ptr_core.errors import PtrError
from ptr_ros.chunking import ChunkEnsembler
from ptr_ros.history import ObservationHistory
from ptr_ros.worker import InferenceWorker, LatencyWindow


def ramp(start: float, n: int = 6, dims: int = 2) -> np.ndarray:
    return np.tile((start + np.arange(n, dtype=float))[:, None], (1, dims))


def test_requests_every_k_ticks() -> None:
    ens = ChunkEnsembler(execute_steps=3)
    assert ens.should_request(1)
    ens.requested(1)
    assert not ens.should_request(2)
    assert not ens.should_request(3)
    assert ens.should_request(4)
    ens.reset()
    assert ens.should_request(5)


def test_without_ensembling_the_newest_chunk_wins() -> None:
    ens = ChunkEnsembler(execute_steps=2, ensemble=False)
    ens.add(ramp(0.0), start=10)  # actions for ticks 10..15
    ens.add(ramp(100.0), start=12)  # actions for ticks 12..17
    plan = ens.plan(11, 4)
    assert plan is not None
    np.testing.assert_allclose(plan[:, 0], [1.0, 100.0, 101.0, 102.0])


def test_ensembling_blends_overlapping_chunks_with_oldest_first_weights() -> None:
    decay = 0.5
    ens = ChunkEnsembler(execute_steps=2, ensemble=True, decay=decay)
    ens.add(ramp(0.0), start=10)
    ens.add(ramp(100.0), start=12)
    plan = ens.plan(11, 3)
    assert plan is not None
    w = np.exp(-decay * np.arange(2))
    blended12 = (w[0] * 2.0 + w[1] * 100.0) / w.sum()
    blended13 = (w[0] * 3.0 + w[1] * 101.0) / w.sum()
    np.testing.assert_allclose(plan[:, 0], [1.0, blended12, blended13])


def test_zero_decay_averages_equally() -> None:
    ens = ChunkEnsembler(execute_steps=1, ensemble=True, decay=0.0)
    ens.add(ramp(0.0), start=0)
    ens.add(ramp(10.0), start=0)
    plan = ens.plan(0, 1)
    assert plan is not None
    np.testing.assert_allclose(plan[0], [5.0, 5.0])


def test_ensembling_removes_the_jump_between_chunks() -> None:
    # Two chunks that disagree by 1.0: executed back to back they jump; blended they do not.
    k = 4
    hard = ChunkEnsembler(execute_steps=k, ensemble=False)
    soft = ChunkEnsembler(execute_steps=k, ensemble=True, decay=0.0)
    for ens in (hard, soft):
        ens.add(np.zeros((8, 1)), start=0)
        ens.add(np.ones((8, 1)), start=k)
    jumps = {}
    for name, ens in (('hard', hard), ('soft', soft)):
        plan = ens.plan(0, 12)
        assert plan is not None
        assert len(plan) == 12  # no gap: the second chunk covers ticks 4..11
        jumps[name] = np.abs(np.diff(plan[:, 0])).max()
    assert jumps['hard'] == pytest.approx(1.0)
    assert jumps['soft'] == pytest.approx(0.5)


def test_plan_stops_where_no_chunk_covers_and_drops_expired_chunks() -> None:
    ens = ChunkEnsembler(execute_steps=2)
    assert ens.plan(0, 3) is None
    ens.add(ramp(0.0, n=4), start=0)
    plan = ens.plan(2, 5)
    assert plan is not None
    assert len(plan) == 2
    assert ens.covered_until() == 4
    assert ens.plan(4, 1) is None
    assert len(ens) == 0


def test_ensembler_validates() -> None:
    with pytest.raises(PtrError, match='execute_steps'):
        ChunkEnsembler(execute_steps=0)
    with pytest.raises(PtrError, match='ensemble_decay'):
        ChunkEnsembler(execute_steps=1, decay=-1.0)
    ens = ChunkEnsembler(execute_steps=1)
    ens.add(np.zeros((3, 2)), start=0)
    with pytest.raises(PtrError, match='3 action dims'):
        ens.add(np.zeros((3, 3)), start=1)


def test_history_repeats_the_first_snapshot_until_full() -> None:
    hist = ObservationHistory(3)
    img = np.zeros((4, 5, 3), np.uint8)
    hist.push([1.0, 2.0], {'front': img}, received=1.0)
    state, images, received = hist.arrays()
    np.testing.assert_array_equal(state, [[1, 2], [1, 2], [1, 2]])
    assert images['front'].shape == (3, 4, 5, 3)
    assert received == 1.0
    for i in range(2, 6):
        hist.push([float(i), 0.0], {'front': img + i}, received=float(i))
    state, images, received = hist.arrays()
    np.testing.assert_array_equal(state[:, 0], [3, 4, 5])
    np.testing.assert_array_equal(images['front'][:, 0, 0, 0], [3, 4, 5])
    assert received == 5.0
    hist.clear()
    with pytest.raises(PtrError, match='empty'):
        hist.arrays()


def test_history_copies_what_it_is_given() -> None:
    hist = ObservationHistory(1)
    img = np.zeros((2, 2, 3), np.uint8)
    state = np.array([1.0])
    hist.push(state, {'front': img}, received=0.0)
    img[:] = 9
    state[:] = 9
    s, images, _ = hist.arrays()
    assert s[0, 0] == 1.0
    assert images['front'].max() == 0


def test_worker_runs_off_the_calling_thread_and_drops_jobs_while_busy() -> None:
    release = threading.Event()
    results: list[tuple[int, str]] = []
    done = threading.Event()

    def fn(job: int) -> str:
        release.wait(10)
        return threading.current_thread().name

    def on_result(job: int, name: str) -> None:
        results.append((job, name))
        done.set()

    worker: InferenceWorker[int, str] = InferenceWorker(fn, on_result, lambda j, e: None)
    try:
        assert worker.submit(1)
        assert worker.busy
        assert not worker.submit(2)  # busy: dropped, never queued behind the slow one
        release.set()
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while worker.busy and time.monotonic() < deadline:
            time.sleep(0.01)
        assert results == [(1, 'ptr-inference')]
        assert threading.current_thread().name != 'ptr-inference'
        assert not worker.busy
    finally:
        worker.close()


def test_worker_reports_errors_and_keeps_running() -> None:
    errors: list[str] = []
    results: list[int] = []
    event = threading.Event()

    def fn(job: int) -> int:
        if job < 0:
            raise ValueError('bad job')
        return job * 2

    def on_error(job: int, err: BaseException) -> None:
        errors.append(str(err))
        event.set()

    def on_result(job: int, res: int) -> None:
        results.append(res)
        event.set()

    worker: InferenceWorker[int, int] = InferenceWorker(fn, on_result, on_error)
    try:
        for job in (-1, 4):
            event.clear()
            deadline = time.monotonic() + 10
            while not worker.submit(job):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert event.wait(10)
        assert errors == ['bad job']
        assert results == [8]
    finally:
        worker.close()


def test_latency_window_percentiles_in_ms() -> None:
    window = LatencyWindow(size=100)
    assert window.percentile_ms(50) is None
    for i in range(1, 101):
        window.add(i / 1000.0)
    assert window.percentile_ms(50) == pytest.approx(50.5)
    assert window.percentile_ms(99) == pytest.approx(99.01)
    window.add(1.0)  # the oldest sample falls out
    assert len(window) == 100
