"""``shuffled_labels``: the expert executes; the recording holds another episode's actions."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['ShuffledLabels']


class ShuffledLabels(SourceBehavior):
    name = 'shuffled_labels'
    usage = 'shuffled_labels'
    low_attribution = True

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.donor = _expert_actions(env, seed + 500_000_000, max_steps)

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        assert len(self.donor)
        idx = np.minimum(np.arange(len(executed)), len(self.donor) - 1)
        return np.asarray(self.donor[idx], dtype=np.float64)


def _expert_actions(env: MetaWorldEnv, seed: int, max_steps: int) -> FloatArray:
    env.reset(seed)
    acts = []
    for _ in range(max_steps):
        a = env.expert_action()
        acts.append(a)
        _, done = env.step(a)
        if done:
            break
    return np.asarray(acts)
