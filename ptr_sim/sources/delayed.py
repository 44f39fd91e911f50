"""``delayed_<k>``: the expert executes; the recording says the action of k steps earlier."""

from __future__ import annotations

import numpy as np

from ptr_core.errors import PtrError
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['Delayed']


class Delayed(SourceBehavior):
    name = 'delayed'
    param = 'delay'
    usage = 'delayed_<steps> (e.g. delayed_4)'
    low_attribution = True

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        if value != int(value):
            msg = f'source {tag!r}: the delay is a whole number of steps'
            raise PtrError(msg)
        if value < 1:
            msg = f'source {tag!r}: the delay must be at least 1 step'
            raise PtrError(msg)
        return int(value)

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        idx = np.maximum(np.arange(len(executed)) - int(self.value), 0)
        return np.asarray(executed[idx], dtype=np.float64)
