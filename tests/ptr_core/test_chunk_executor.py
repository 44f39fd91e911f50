"""``ChunkExecutor``: chunk timing, overlap and temporal ensembling (node and simulator)."""

from __future__ import annotations

import numpy as np
import pytest

from ptr_core.errors import PtrError
from ptr_core.inference import ChunkExecutor, ExecutionConfig


def ramp(start: float, n: int = 6, dims: int = 2) -> np.ndarray:
    return np.tile((start + np.arange(n, dtype=float))[:, None], (1, dims))


def test_requests_every_k_ticks() -> None:
    ens = ChunkExecutor(ExecutionConfig(execute_steps=3))
    assert ens.should_request(1)
    ens.requested(1)
    assert not ens.should_request(2)
    assert not ens.should_request(3)
    assert ens.should_request(4)
    ens.reset()
    assert ens.should_request(5)


def test_without_ensembling_the_newest_chunk_wins() -> None:
    ens = ChunkExecutor(ExecutionConfig(execute_steps=2, ensemble=False))
    ens.add(ramp(0.0), start=10)  # actions for ticks 10..15
    ens.add(ramp(100.0), start=12)  # actions for ticks 12..17
    plan = ens.plan(11, 4)
    assert plan is not None
    np.testing.assert_allclose(plan[:, 0], [1.0, 100.0, 101.0, 102.0])


def test_ensembling_blends_overlapping_chunks_with_oldest_first_weights() -> None:
    decay = 0.5
    ens = ChunkExecutor(ExecutionConfig(execute_steps=2, ensemble=True, decay=decay))
    ens.add(ramp(0.0), start=10)
    ens.add(ramp(100.0), start=12)
    plan = ens.plan(11, 3)
    assert plan is not None
    w = np.exp(-decay * np.arange(2))
    blended12 = (w[0] * 2.0 + w[1] * 100.0) / w.sum()
    blended13 = (w[0] * 3.0 + w[1] * 101.0) / w.sum()
    np.testing.assert_allclose(plan[:, 0], [1.0, blended12, blended13])


def test_zero_decay_averages_equally() -> None:
    ens = ChunkExecutor(ExecutionConfig(execute_steps=1, ensemble=True, decay=0.0))
    ens.add(ramp(0.0), start=0)
    ens.add(ramp(10.0), start=0)
    plan = ens.plan(0, 1)
    assert plan is not None
    np.testing.assert_allclose(plan[0], [5.0, 5.0])


def test_ensembling_removes_the_jump_between_chunks() -> None:
    # Two chunks that disagree by 1.0: executed back to back they jump; blended they do not.
    k = 4
    hard = ChunkExecutor(ExecutionConfig(execute_steps=k, ensemble=False))
    soft = ChunkExecutor(ExecutionConfig(execute_steps=k, ensemble=True, decay=0.0))
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
    ens = ChunkExecutor(ExecutionConfig(execute_steps=2))
    assert ens.plan(0, 3) is None
    ens.add(ramp(0.0, n=4), start=0)
    plan = ens.plan(2, 5)
    assert plan is not None
    assert len(plan) == 2
    assert ens.covered_until() == 4
    assert ens.plan(4, 1) is None
    assert len(ens) == 0


def test_execution_config_validates() -> None:
    with pytest.raises(PtrError, match='execute_steps'):
        ExecutionConfig(execute_steps=0)
    with pytest.raises(PtrError, match='ensemble_decay'):
        ExecutionConfig(execute_steps=1, decay=-1.0)
    ens = ChunkExecutor(ExecutionConfig(execute_steps=1))
    ens.add(np.zeros((3, 2)), start=0)
    with pytest.raises(PtrError, match='3 action dims'):
        ens.add(np.zeros((3, 3)), start=1)
