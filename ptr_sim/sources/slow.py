"""``slow_<f>``: a slow operator: the expert's motion scaled by ``f`` in (0, 1) (the gripper as
the expert's); recorded as executed. A fixed horizon leaves the slowest without success."""

from __future__ import annotations

import numpy as np

from ptr_core.errors import PtrError
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Slow']


class Slow(SourceBehavior):
    name = 'slow'
    param = 'speed'
    usage = 'slow_<speed> (e.g. slow_0.5)'

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        if not 0.0 < value < 1.0:
            msg = f'source {tag!r}: the speed is a fraction of the expert in (0, 1)'
            raise PtrError(msg)
        return value

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        out = np.array(expert, dtype=np.float64)
        out[:3] *= self.value
        return out
