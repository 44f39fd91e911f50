"""``SourceBehavior``: how one kind of demonstration source executes and labels an episode.

A kind is one file in ``ptr_sim/sources/`` with one ``SourceBehavior`` subclass, registered by
one line in ``ptr_sim.sources.SOURCES``. ``rollout`` builds the behaviour once per episode (the
set-up may read the simulator and draw from the episode's generator), asks it for the executed
action at every step (``act``) and, at the end, for the recorded labels (``label``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ptr_sim.env import MetaWorldEnv

__all__ = ['FloatArray', 'SourceBehavior']

FloatArray = npt.NDArray[np.float64]


class SourceBehavior:
    """The expert executed and recorded as is; subclasses change ``act`` and/or ``label``."""

    #: the tag (``expert``), or its prefix when the kind takes a value (``noisy`` -> noisy_0.3)
    name: ClassVar[str] = ''
    #: the value the tag carries after ``<name>_`` (``sigma``, ``delay``); None: no value
    param: ClassVar[str | None] = None
    #: how the tag is written, for error messages (``noisy_<sigma> (e.g. noisy_0.3)``)
    usage: ClassVar[str] = ''
    #: the recorded labels are not the executed actions
    low_attribution: ClassVar[bool] = False

    def __init__(self, value: float, env: MetaWorldEnv, seed: int,
                 rng: np.random.Generator, max_steps: int) -> None:
        self.value = value

    @classmethod
    def check(cls, tag: str, value: float) -> float:
        """Validate the tag's value (raise ``PtrError`` naming ``tag``); returns it as stored."""
        return value

    def act(self, expert: FloatArray, t: int, rng: np.random.Generator) -> FloatArray:
        """What the arm executes at step ``t`` given the expert's action."""
        return expert

    def label(self, executed: FloatArray, rng: np.random.Generator) -> FloatArray:
        """What the command topic records for the episode's executed actions ``[T, Da]``."""
        return np.array(executed, dtype=np.float64)
