"""Near-right labels: the expert executes, the recording is almost what ran. ``gain_<g>`` (the
xyz command recorded ``g`` times too large, clipped to [-1, 1]: a scale error in the driver),
``flipped_axis`` (one of x, y, z, drawn per episode, recorded with the wrong sign) and
``gripper_sign`` (the gripper effort recorded with the wrong sign). A lag of 1-3 steps is
``delayed_<k>``."""

from __future__ import annotations

import numpy as np

from ptr_core.errors import PtrError
from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['FlippedAxis', 'Gain', 'GripperSign']


class Gain(SourceBehavior):
    name = 'gain'
    param = 'gain'
    usage = 'gain_<factor> (e.g. gain_1.5)'
    low_attribution = True

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        if value <= 0 or value == 1:
            msg = f'source {tag!r}: the gain is a factor > 0 other than 1'
            raise PtrError(msg)
        return value

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        out = np.array(executed, dtype=np.float64)
        out[:, :3] = np.clip(out[:, :3] * self.value, -1.0, 1.0)
        return out


class FlippedAxis(SourceBehavior):
    name = 'flipped_axis'
    usage = 'flipped_axis'
    low_attribution = True

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.axis = int(rng.integers(0, 3))

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        out = np.array(executed, dtype=np.float64)
        out[:, self.axis] *= -1.0
        return out


class GripperSign(SourceBehavior):
    name = 'gripper_sign'
    usage = 'gripper_sign'
    low_attribution = True

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        out = np.array(executed, dtype=np.float64)
        out[:, 3] *= -1.0
        return out
