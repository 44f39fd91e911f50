"""The expert acting on a misread scene: ``grasp_miss`` (it sees the object 4-6 cm from where it
is, for the whole episode: it closes the gripper beside the object and keeps trying there;
ends in failure) and ``wrong_target`` (it sees the goal 12-18 cm off: the right motion, the
object carried to the wrong place). Recorded as executed."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ptr_sim.env import MetaWorldEnv
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['GraspMiss', 'WrongTarget']


class _Misread(SourceBehavior):
    """The expert's action for the observation with ``field`` moved horizontally."""

    field: ClassVar[slice] = slice(4, 7)
    offset_m: ClassVar[tuple[float, float]] = (0.04, 0.06)

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        super().__init__(value, env, seed, rng, max_steps)
        self.env = env
        angle = rng.uniform(0.0, 2.0 * np.pi)
        self.shift = rng.uniform(*self.offset_m) * np.array([np.cos(angle), np.sin(angle), 0.0])

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        seen = np.array(self.env.obs, dtype=np.float64)
        seen[self.field] += self.shift
        return self.env.expert_action(seen)


class GraspMiss(_Misread):
    name = 'grasp_miss'
    usage = 'grasp_miss'


class WrongTarget(_Misread):
    name = 'wrong_target'
    usage = 'wrong_target'
    field = slice(36, 39)
    offset_m = (0.12, 0.18)
