"""End to end: both heads learn the synthetic reaching controller from state (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ptr_core import batch as K
from ptr_core.data import build_data
from ptr_core.evaluation import evaluate
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.trainer import train

# flow converges in fewer steps than ε-prediction diffusion (measured: ~1000 vs ~1500 steps)
HEADS = {
    'flow': ['steps=1000', 'policy.inference_steps=8'],
    'diffusion': ['steps=1500', 'policy.train_timesteps=100', 'policy.inference_steps=10'],
}


@pytest.mark.slow
@pytest.mark.parametrize('head', sorted(HEADS))
def test_state_policy_learns_the_controller(head: str, tmp_path: Path, repo_root: Path,
                                            tiny_config) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / 'reach'
    make_synthetic_dataset(data, robot='arm', episodes=16, length=40, state_dim=3, seed=4)
    cfg = tiny_config(data, tmp_path / 'run', *HEADS[head], 'batch_size=64',
                      f'policy.head={head}', 'policy.unet_dims=[32, 64]',
                      'policy.encoder.state_hidden=64', 'policy.encoder.context_dim=64',
                      'optim.warmup_steps=20', 'ema_decay=0.99',
                      'log_every=100')
    result = train(cfg)
    assert result.final is not None
    report = evaluate(result.final, [data], max_windows=128)
    # baseline: always predicting the mean action (0 in normalized units, up to centring)
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    acts = torch.stack([bundle.train[bundle.train.flat_index(i)][K.ACTION]
                        for i in range(0, len(bundle.train), 5)])
    baseline = float(((acts - acts.mean(dim=(0, 1))) ** 2).mean())
    mse = report.robots[0].mse_normalized
    assert mse < 0.35 * baseline, (mse, baseline)
