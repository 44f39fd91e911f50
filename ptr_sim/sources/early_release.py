"""``early_release``: the expert, but once it has moved the object 3 cm from where it lay, 0-10
steps later it opens the gripper and holds still for 8 steps (the object drops), then the
expert takes over again (a re-grasp); recorded as executed."""

from __future__ import annotations

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['EarlyRelease']

MOVED_M = 0.03  # how far the object has moved when the operator lets go
RELEASE_STEPS = 8


class EarlyRelease(SourceBehavior):
    name = 'early_release'
    usage = 'early_release'

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.env = env
        self.start_object: FloatArray | None = None
        self.wait = int(rng.integers(0, 11))
        self.release_at: int | None = None

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        obj = np.asarray(self.env.obs[4:7], dtype=np.float64)
        if self.start_object is None:
            self.start_object = obj.copy()
        if self.release_at is None and np.linalg.norm(obj - self.start_object) > MOVED_M:
            self.release_at = t + self.wait
        if self.release_at is not None and 0 <= t - self.release_at < RELEASE_STEPS:
            return np.array([0.0, 0.0, 0.0, -1.0])
        return expert
