"""``partial``: a good episode with one bad stretch: for 20-30 steps from step 10-40 the
operator adds N(0, 0.6²) per dimension (clipped), the expert before and after; recorded as
executed. The stretch's steps are ``Partial.bad_steps``."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Partial']

SIGMA = 0.6


class Partial(SourceBehavior):
    name = 'partial'
    usage = 'partial'

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        start = int(rng.integers(10, 41))
        self.bad_steps = range(start, min(start + int(rng.integers(20, 31)), max_steps))

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        if t not in self.bad_steps:
            return expert
        return np.clip(expert + rng.normal(0.0, SIGMA, size=expert.shape), -1.0, 1.0)
