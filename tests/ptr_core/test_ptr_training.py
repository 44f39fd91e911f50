"""End to end with the real policies, trainer and ``ptr weights``.

The attribution dataset (written through ``bag_tools.dataset.write_episode``): a point wanders
under random actions, ``s_{t+1} = clip(s_t + 0.3·a_t)``. Even episodes record the actions that
moved it ("matching"); odd episodes record fresh random actions unrelated to the motion
("unrelated"). Both halves have the same state distribution, so the context alone cannot tell
them apart. After training, PTR must give the matching half clearly more weight.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bag_tools.dataset import Dataset, EpisodeData, write_episode
from ptr_core.configuration import load_config
from ptr_core.synthetic import make_synthetic_dataset, robot_entry
from ptr_core.trainer import train
from ptr_core.weighting.ptr.config import PAPER_DEFAULTS
from ptr_core.weighting.ptr.report import score_dataset, summarize


def write_attribution_dataset(root: Path, *, episodes: int = 16, length: int = 48,
                              dim: int = 4, step: float = 0.3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    written = []
    for i in range(episodes):
        unrelated = i % 2 == 1
        s = rng.uniform(-1, 1, dim).astype(np.float32)
        states, actions = [], []
        for _ in range(length):
            a = rng.uniform(-1, 1, dim).astype(np.float32)
            states.append(s.copy())
            actions.append(rng.uniform(-1, 1, dim).astype(np.float32) if unrelated else a)
            s = np.clip(s + step * a, -2, 2).astype(np.float32)
        ep = EpisodeData(
            id=f'ep{i:03d}', robot='arm', timestamp=np.arange(length, dtype=np.int64) * 10**8,
            state=np.stack(states), action=np.stack(actions),
            state_valid=np.ones(length, bool), action_valid=np.ones(length, bool),
            task='wander', source='synthetic', content_hash=f'attr-{seed}-{i}',
            tags={'ptr.source': 'unrelated' if unrelated else 'matching'},
        )
        write_episode(root, ep)
        written.append(ep)
    ds.add_episodes(written, robots={'arm': robot_entry('arm', state_dim=dim, action_dim=dim)})
    return root


def train_and_score(
    tmp: Path, repo: Path, head: str, options: dict[str, Any], steps: int = 240,
    step: float = 0.3,
) -> tuple[dict[str, float], dict[str, Any]]:
    torch.set_num_threads(2)
    data = write_attribution_dataset(tmp / 'data', step=step)
    opts = '{' + ', '.join(f'{k}: {json.dumps(v)}' for k, v in options.items()) + '}'
    cfg = load_config(repo / 'config' / 'train' / 'debug.yaml', [
        f'data.datasets=[{str(data)!r}]', f'out_dir={str(tmp / "run")!r}',
        f'policy.head={head}', f'steps={steps}', 'batch_size=64', 'val_every=0',
        f'save_every={steps}', 'log_every=10', 'policy.chunk_length=4', 'optim.lr=1e-3',
        'weighter.name=ptr', f'weighter.options={opts}', 'threads=2',
    ])
    result = train(cfg)
    assert result.final is not None
    summary = summarize(score_dataset(result.final, [data]))
    by_source = {row['name']: row['w_mean'] for row in summary['sources']}
    report = {f'report/{k}': v for k, v in summary['overall'].items() if k != 'name'}
    return by_source, {**result.metrics, **report}


@pytest.mark.slow
@pytest.mark.parametrize('head', ['flow', 'diffusion'])
@pytest.mark.parametrize('case', ['action', 'future_hard'])
def test_ptr_trusts_the_matching_half(head: str, case: str, tmp_path: Path,
                                      repo_root: Path) -> None:
    options: dict[str, Any] = {'warmup_steps': 80, 'controller_every': 10}
    if case == 'future_hard':
        # the paper's future score with nearest-state hard negatives, on the change of the
        # observation (with the raw future it does not separate the halves, as PTR_SPEC.md
        # measured: the heads' e carries the context, so the future is found without the action)
        options.update(PAPER_DEFAULTS, target='delta', hard_negatives='nearest_state',
                       r_hard_min=0.5, center=True, beta=0.5, w_min=0.05)
    w, metrics = train_and_score(tmp_path, repo_root, head, options)
    assert w['matching'] > (1.25 if case == 'action' else 1.15) * w['unrelated'], (w, metrics)
    if case == 'future_hard':
        assert metrics['weighter/r_hard'] == 0.5


@pytest.mark.slow
def test_future_score_with_random_negatives_saturates(
    tmp_path: Path, repo_root: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    options = {**PAPER_DEFAULTS, 'hard_negatives': 'none', 'warmup_steps': 80,
               'controller_every': 10}
    # small steps: as with a near-deterministic expert, the future follows from the context
    with caplog.at_level(logging.WARNING, logger='ptr_core.weighting.ptr.diagnostics'):
        w, metrics = train_and_score(tmp_path, repo_root, 'flow', options, steps=600,
                                     step=0.05)
    shown = {k: v for k, v in metrics.items() if k.startswith(('weighter/', 'report/'))}
    assert metrics['report/at_max_share'] > 0.65, shown  # most weights sit at w_max ...
    assert metrics['report/ess_ratio'] > 0.9, shown  # ... so the weights are nearly uniform
    assert w['matching'] < 1.1 * w['unrelated'], (w, shown)  # so the halves look alike
    assert metrics['weighter/nce_acc'] > 0.1, shown  # far above chance (1/|Y| < 0.01)
    assert 'w_max clip bound' in caplog.text


def test_ptr_weights_cli_writes_the_report(
    tmp_path: Path, repo_root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from ptr_cli.main import main

    torch.set_num_threads(2)
    data = tmp_path / 'data'
    make_synthetic_dataset(data, episodes=4, length=24, sources=('good', 'bad'))
    make_synthetic_dataset(data, robot='arm2', episodes=2, length=24, state_dim=3,
                           sources=('good',), seed=1)
    finals = {}
    runs = {'uniform': ('uniform', '{}'), 'ptr': ('ptr', '{warmup_steps: 2}'),
            'alpha0': ('ptr', '{alpha: 0.0, warmup_steps: 0}')}
    for run, (name, options) in runs.items():
        cfg = load_config(repo_root / 'config' / 'train' / 'debug.yaml', [
            f'data.datasets=[{str(data)!r}]', f'out_dir={str(tmp_path / run)!r}', 'steps=4',
            'val_every=0', 'device=cpu', f'weighter.name={name}',
            f'weighter.options={options}',
        ])
        finals[run] = train(cfg).final
    # alpha = 0 reproduces uniform post-training exactly (weights and EMA, bit for bit)
    for file in ('model.safetensors', 'ema.safetensors'):
        a, b = load_file(str(finals['uniform'] / file)), load_file(str(finals['alpha0'] / file))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), file
    uni = load_file(str(finals['uniform'] / 'model.safetensors'))
    ptr_model = load_file(str(finals['ptr'] / 'model.safetensors'))
    assert not all(torch.equal(uni[k], ptr_model[k]) for k in uni)  # ... PTR itself does not
    out = tmp_path / 'report'
    capsys.readouterr()
    assert main(['weights', str(finals['ptr']), str(data), '--out', str(out),
                 '--no-progress']) == 0
    assert 'mean w' in capsys.readouterr().out
    summary = json.loads((out / 'summary.json').read_text())
    assert len(summary['episodes']) == 6
    assert {r['name'] for r in summary['robots']} == {'sim_arm', 'arm2'}
    assert {r['name'] for r in summary['sources']} == {'good', 'bad'}
    assert summary['overall']['samples'] == 6 * 24
    assert sum(r['loss_share'] for r in summary['episodes']) == pytest.approx(1.0)
    for row in summary['episodes']:
        assert 0.05 <= row['w_min'] <= row['w_mean'] <= row['w_max'] <= 4.0
    assert (out / 'episodes.csv').read_text().count('\n') == 7
    assert (out / 'samples.csv').read_text().count('\n') == 6 * 24 + 1
    assert (out / 'histogram.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert main(['weights', str(finals['uniform']), str(data), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert "weighter 'uniform'" in err
    assert err.count('\n') == 1
