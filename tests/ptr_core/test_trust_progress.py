"""The progress signal: correctly labelled but poor operators that label consistency misses.

A point robot reaches a goal (``s' = s + 0.25 a``; the state holds the position and the goal),
every episode the same fixed horizon (the expert holds after reaching: length carries nothing).
Every recorded action is the executed one, so the consequence scorer sees nothing wrong:

- ``expert``: a proportional reach; ``slow``: the same at 30 % of the speed;
- ``hesitant``: the expert's reach with pauses (two of every three 3-step blocks idle);
- ``detour``: first 12 steps toward a point away from the goal, then the reach;
- ``partial``: an expert's reach with one 4-step stretch driven backwards (a good episode with a
  bad stretch; the episode's mean rate drops with it, so today the whole episode loses trust,
  not the stretch only).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from bag_tools.dataset import Dataset, EpisodeData, write_episode
from ptr_core.synthetic import robot_entry
from ptr_core.weighting.trust import TrustConfig, score_datasets
from ptr_core.weighting.trust.calibrate import auroc_length_controlled

KINDS = ('expert', 'expert', 'expert', 'slow', 'expert', 'hesitant', 'expert', 'detour',
         'expert', 'partial')
POOR = ('slow', 'hesitant', 'detour')
LENGTH = 40
STRETCH = range(3, 7)  # the partial episodes' bad stretch

Array = npt.NDArray[np.float32]


def operator_action(kind: str, t: int, pos: Array, goal: Array, start: Array) -> Array:
    reach = np.clip(2.0 * (goal - pos), -1.0, 1.0)
    if kind == 'slow':
        return (0.3 * reach).astype(np.float32)
    if kind == 'hesitant' and (t // 3) % 3 != 0:
        return np.zeros(2, np.float32)
    if kind == 'detour' and t < 12:
        away = start + 0.8 * (start - goal) / max(float(np.linalg.norm(start - goal)), 1e-6)
        return np.clip(2.0 * (away - pos), -1.0, 1.0).astype(np.float32)
    if kind == 'partial' and t in STRETCH:
        return (-reach).astype(np.float32)
    return reach.astype(np.float32)


def write_operators_dataset(root: Path, *, episodes: int = 30, seed: int = 0,
                            kinds: tuple[str, ...] = KINDS) -> Path:
    rng = np.random.default_rng(seed)
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    written = []
    for i in range(episodes):
        kind = kinds[i % len(kinds)]
        start = rng.uniform(-1, 1, 2).astype(np.float32)
        goal = rng.uniform(-1, 1, 2).astype(np.float32)
        pos, states, actions = start.copy(), [], []
        for t in range(LENGTH):
            a = operator_action(kind, t, pos, goal, start)
            states.append(np.r_[pos, goal].astype(np.float32))
            actions.append(a)
            pos = np.clip(pos + 0.25 * a, -2, 2).astype(np.float32)
        ep = EpisodeData(
            id=f'ep{i:03d}', robot='arm', timestamp=np.arange(LENGTH, dtype=np.int64) * 10**8,
            state=np.stack(states), action=np.stack(actions),
            state_valid=np.ones(LENGTH, bool), action_valid=np.ones(LENGTH, bool),
            task='reach', source='synthetic', content_hash=f'operators-{seed}-{i}',
            tags={'ptr.source': kind},
        )
        write_episode(root, ep)
        written.append(ep)
    ds.add_episodes(written, robots={'arm': robot_entry('arm', state_dim=4, action_dim=2)})
    return root


@pytest.fixture(scope='module')
def operators(
    tmp_path_factory: pytest.TempPathFactory, train_base: Callable[..., Path],
) -> tuple[Path, Path]:
    """(dataset, base checkpoint): the base is a few uniform steps, only its encoder is read."""
    root = tmp_path_factory.mktemp('progress')
    data = write_operators_dataset(root / 'data')
    return data, train_base(data, root / 'base')


def test_progress_ranks_poor_operators_below_experts_where_attribution_does_not(
    operators: tuple[Path, Path], tmp_path: Path,
) -> None:
    data, base = operators
    torch.set_num_threads(1)
    config = TrustConfig(folds=2, steps=100, hidden=64, batch_size=128, score_draws=2,
                         second_signal='progress')
    res = score_datasets([data], init=base, config=config)
    eps = res.trust.episodes
    src = np.asarray(res.sources)
    good = src == 'expert'

    def signal_auroc(name: str, kind: str) -> float:
        values = np.asarray([ep.signals[name] for ep in eps])
        return auroc_length_controlled(values, res.lengths, good, src == kind)

    for kind in (*POOR, 'partial'):
        assert signal_auroc('progress', kind) >= 0.9, kind
    attribution = np.mean([signal_auroc('attribution', k) for k in POOR])
    assert attribution < 0.8  # the labels are right: consistency alone cannot rank them
    trust = np.asarray([ep.trust for ep in eps])
    assert float((trust[good] > 0.9).mean()) >= 0.9
    assert trust[np.isin(src, POOR)].max() < 0.5
    assert res.trust.scorer['combine'] == 'P_attribution*P_progress'
    # expert-only data: nobody is cut for pace
    experts = write_operators_dataset(tmp_path / 'experts', episodes=20, seed=5,
                                      kinds=('expert',))
    alone = score_datasets([experts], init=base, config=config)
    assert [ep.trust for ep in alone.trust.episodes] == [1.0] * 20
