"""``recovery``: the expert with 1-2 detours of 8-14 steps (a constant random push), after which
the expert recovers; recorded as executed."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Recovery']


class Recovery(SourceBehavior):
    name = 'recovery'
    usage = 'recovery'

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.detours = _detour_plan(rng, max_steps)

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        return self.detours.get(t, expert)


def _detour_plan(rng: np.random.Generator, max_steps: int) -> dict[int, FloatArray]:
    """Steps at which a recovery episode is pushed off course, and the push."""
    plan: dict[int, FloatArray] = {}
    start = int(rng.integers(5, 25))
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.integers(8, 15))
        direction = rng.normal(size=3)
        push = np.concatenate([direction / np.linalg.norm(direction), [rng.choice([-1.0, 1.0])]])
        for t in range(start, min(start + length, max_steps)):
            plan[t] = push
        start += length + int(rng.integers(15, 30))
    return plan
