"""``hesitant``: the expert with 2-4 pauses of 6-15 steps (the arm holds still, the gripper as
the expert's) in the first 100 steps; recorded as executed."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Hesitant']


class Hesitant(SourceBehavior):
    name = 'hesitant'
    usage = 'hesitant'

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.paused: set[int] = set()
        start = int(rng.integers(3, 20))
        for _ in range(int(rng.integers(2, 5))):
            length = int(rng.integers(6, 16))
            self.paused.update(range(start, min(start + length, max_steps)))
            start += length + int(rng.integers(8, 25))

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        if t not in self.paused:
            return expert
        return np.array([0.0, 0.0, 0.0, expert[3]])
