"""The consensus the behaviour-cloning probe (the trust's default second signal) learns from:
only the rows of the episodes the attribution keeps, never a held-out fold's own rows."""

from __future__ import annotations

import numpy as np
import torch

from ptr_core.weighting.trust.config import TrustConfig
from ptr_core.weighting.trust.crossfit import _fit_rows, _oof_regression


def _rows(n: int, wrong: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` rows whose target is a fixed linear map of ``x``; the first ``wrong`` rows carry a
    structured wrong label instead (the map's negative: a biased consensus, not noise)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    y = x @ torch.tensor([[1.0, 0.0], [0.5, -1.0], [0.0, 0.5], [-0.5, 1.0]])
    y[:wrong] = -y[:wrong]
    return x, y, torch.ones_like(y, dtype=torch.bool)


def test_the_probe_learns_only_from_the_consensus_rows() -> None:
    n, wrong = 600, 360  # the wrong labels are the majority
    x, y, mask = _rows(n, wrong)
    rows = torch.arange(n)
    folds = np.arange(n) % 3
    config = TrustConfig(folds=3, steps=300, hidden=32, batch_size=128)
    learn = np.arange(n) >= wrong
    everyone = _oof_regression(x, y, mask, rows, folds, config, seed=0)
    consensus = _oof_regression(x, y, mask, rows, folds, config, seed=0, learn_from=learn)
    good = torch.from_numpy(learn)
    # learnt from every row, the majority's wrong map sets the consensus: the good rows
    # disagree with it more than the wrong ones do
    assert everyone[good].mean() > everyone[~good].mean()
    # learnt from the kept rows, the good rows agree with it far better than the wrong ones
    assert consensus[good].mean() < 0.2 * consensus[~good].mean()


def test_a_fold_without_consensus_rows_learns_from_all_of_the_other_folds() -> None:
    other = np.array([True, True, False, False])
    assert _fit_rows(other, np.array([True, False, True, False])).tolist() == [
        True, False, False, False]
    assert _fit_rows(other, np.array([False, False, True, True])).tolist() == other.tolist()
