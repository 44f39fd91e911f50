"""``random_labels``: the expert executes; the recording says uniform noise in [-1, 1]."""

from __future__ import annotations

import numpy as np

from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['RandomLabels']


class RandomLabels(SourceBehavior):
    name = 'random_labels'
    usage = 'random_labels'
    low_attribution = True

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        return rng.uniform(-1.0, 1.0, size=executed.shape)
