"""Attribution: PTR must trust the samples whose recorded action explains the next observation.

Half of the episodes record the action that moved the state, half record an unrelated action;
the states are drawn from the same prototypes, so the context alone cannot tell the halves apart.
These runs use the tiny stand-in policy of ``test_ptr_weighter`` (seconds each); the end-to-end
runs with the real diffusion and flow policies and the trainer live in
``test_ptr_training.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from test_ptr_weighter import make, make_batch, step

from ptr_core import batch as K
from ptr_core.weighting.ptr.config import PAPER_DEFAULTS


def train(options: dict[str, Any], *, steps: int = 400, protos: int = 64) -> dict[str, float]:
    """Train policy + scorer; mean weight per half and mean diagnostics over the last 100 steps."""
    torch.set_num_threads(1)
    policy, weighter = make(options)
    opt = torch.optim.Adam([*policy.parameters(), *weighter.parameters()], lr=3e-3)
    g = torch.Generator().manual_seed(0)
    good: list[float] = []
    bad: list[float] = []
    sums: dict[str, float] = {}
    for i in range(steps):
        batch = make_batch(64, g, n_protos=protos)
        weights, metrics = step(policy, weighter, batch, i, opt)
        if i >= steps - 100:
            src = batch[K.SOURCE_ID]
            good.append(weights[src == 0].mean().item())
            bad.append(weights[src == 1].mean().item())
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value / 100
    return {'good': sum(good) / len(good), 'bad': sum(bad) / len(bad), **sums}


def test_action_mode_trusts_the_matching_half() -> None:
    r = train({'warmup_steps': 100, 'controller_every': 10})  # the measured-best defaults
    assert r['good'] > 1.5 * r['bad'], r
    assert r['w_mean/source/good'] > r['w_mean/source/bad']
    assert r['w_at_max_share'] < 0.5
    assert r['w_at_min_share'] < 0.5


def test_future_mode_with_nearest_state_hard_negatives_separates_the_halves() -> None:
    paper = train({**PAPER_DEFAULTS, 'warmup_steps': 100, 'controller_every': 10})
    assert paper['good'] > paper['bad'] + 0.4, paper
    assert paper['r_hard'] > 0.05
    centred = train({**PAPER_DEFAULTS, 'warmup_steps': 100, 'controller_every': 10,
                     'center': True, 'beta': 0.5, 'w_min': 0.05})
    assert centred['good'] > 1.4 * centred['bad'], centred


def test_future_mode_with_random_negatives_saturates_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger='ptr_core.weighting.ptr.diagnostics'):
        r = train({**PAPER_DEFAULTS, 'warmup_steps': 100, 'controller_every': 10,
                   'hard_negatives': 'none'}, protos=256)
    assert r['r_hard'] == 0.0
    assert r['w_at_max_share'] > 0.75, r  # nearly every weight sits at w_max ...
    assert r['good'] < 1.1 * r['bad']  # ... so the halves are barely told apart
    assert 'w_max clip bound' in caplog.text
