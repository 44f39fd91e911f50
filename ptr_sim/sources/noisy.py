"""``noisy_<σ>``: expert + N(0, σ²) per dim, clipped to [-1, 1]; recorded as executed."""

from __future__ import annotations

import numpy as np

from ptr_core.errors import PtrError
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Noisy']


class Noisy(SourceBehavior):
    name = 'noisy'
    param = 'sigma'
    usage = 'noisy_<sigma> (e.g. noisy_0.3)'

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        if value <= 0:
            msg = f'source {tag!r}: the noise sigma must be > 0'
            raise PtrError(msg)
        return value

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        return np.clip(expert + rng.normal(0.0, self.value, size=expert.shape), -1.0, 1.0)
