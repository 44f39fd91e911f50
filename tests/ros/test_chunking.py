"""The node's rclpy-free helpers: the inference worker thread and the observation history.

Chunk execution is ``ptr_core.inference.ChunkExecutor`` (tests/ptr_core/test_chunk_executor.py).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ptr_core.errors import PtrError
from ptr_core.history import ObservationHistory
from ptr_ros.worker import InferenceWorker, LatencyWindow


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
