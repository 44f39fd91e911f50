"""``jerky_<a>``: the expert plus a jitter of amplitude ``a`` whose sign flips every step along
a direction redrawn every 5 steps (zero net drift, large step-to-step changes); recorded as
executed."""

from __future__ import annotations

import numpy as np

from ptr_core.errors import PtrError
from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Jerky']

BLOCK = 5  # steps between new jitter directions


class Jerky(SourceBehavior):
    name = 'jerky'
    param = 'amplitude'
    usage = 'jerky_<amplitude> (e.g. jerky_0.5)'

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        if not 0.0 < value <= 2.0:
            msg = f'source {tag!r}: the jitter amplitude must be in (0, 2]'
            raise PtrError(msg)
        return value

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        d = rng.normal(size=(max_steps // BLOCK + 1, 3))
        self.directions = d / np.linalg.norm(d, axis=1, keepdims=True)

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        out = np.array(expert, dtype=np.float64)
        out[:3] += self.value * (-1.0) ** t * self.directions[t // BLOCK]
        return np.clip(out, -1.0, 1.0)
