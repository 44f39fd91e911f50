"""``detour``: the expert with one smooth sideways excursion: for 30-50 steps from step 5-30 a
horizontal push ``0.7 sin(2 pi s / W)`` (out and back: no net push), after which the expert is in
charge; recorded as executed. Unlike ``recovery`` (a constant push, then a correction) the
actions stay smooth."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Detour']

AMPLITUDE = 0.7


class Detour(SourceBehavior):
    name = 'detour'
    usage = 'detour'

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.start = int(rng.integers(5, 31))
        self.width = int(rng.integers(30, 51))
        angle = rng.uniform(0.0, 2.0 * np.pi)
        self.direction = np.array([np.cos(angle), np.sin(angle), 0.0])

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        s = t - self.start
        if not 0 <= s < self.width:
            return expert
        out = np.array(expert, dtype=np.float64)
        out[:3] += AMPLITUDE * np.sin(2.0 * np.pi * s / self.width) * self.direction
        return np.clip(out, -1.0, 1.0)
