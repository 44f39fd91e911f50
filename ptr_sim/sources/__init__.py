"""Demonstration sources of known quality, and one recorded rollout of the simulator.

A source says what the arm executed and what the recording says it was commanded:

========================  ===============================================  ====================
tag                       executed                                         recorded label
========================  ===============================================  ====================
``expert``                the scripted expert's action                     = executed
``noisy_<σ>``             expert + N(0, σ²) per dim, clipped to [-1, 1]    = executed
``recovery``              the expert, with 1–2 detours of 8–14 steps       = executed
                          (a constant random push), after which the
                          expert recovers
``random_labels``         the expert                                       uniform in [-1, 1]
``shuffled_labels``       the expert                                       another episode's
                                                                           executed actions
``delayed_<k>``           the expert                                       executed[t − k]
                                                                           (executed[0] before)
``slow_<f>``              the expert's xyz × f                             = executed
``hesitant``              the expert with 2–4 pauses of 6–15 steps         = executed
``jerky_<a>``             expert + a × (−1)^t × a direction per 5 steps    = executed
``detour``                the expert + one smooth sideways excursion       = executed
``early_release``         the expert; lets go once the object moved 3 cm,  = executed
                          then re-grasps
``grasp_miss``            the expert seeing the object 4–6 cm off (fails)  = executed
``wrong_target``          the expert seeing the goal 12–18 cm off          = executed
``partial``               the expert, N(0, 0.6²) for one 20–30-step run    = executed
``gain_<g>``              the expert                                       xyz × g, clipped
``flipped_axis``          the expert                                       one axis negated
``gripper_sign``          the expert                                       gripper negated
========================  ===============================================  ====================

``random_labels``, ``shuffled_labels``, ``delayed``, ``gain``, ``flipped_axis`` and
``gripper_sign`` are *low-attribution*: the recorded action does not (or only nearly) explain
what happened next, as in a badly synchronized or mislabeled recording. Every other source is
degraded or structurally wrong, but its labels are what the arm did. What the trivial checks
see in each: docs/benchmark.md, "Sources".

One registry: each kind is a ``SourceBehavior`` in its own file of this package, registered by
one line in ``SOURCES``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError
from ptr_sim.env import MetaWorldEnv
from ptr_sim.setups import SimSetup
from ptr_sim.sources.base import FloatArray, SourceBehavior

__all__ = ['SOURCES', 'Rollout', 'Source', 'SourceBehavior', 'behavior', 'parse_mix', 'rollout']

#: The one registry of sources: name -> ``'module:Class'`` (a ``SourceBehavior``).
SOURCES: dict[str, str] = {
    'expert': 'ptr_sim.sources.expert:Expert',
    'noisy': 'ptr_sim.sources.noisy:Noisy',
    'recovery': 'ptr_sim.sources.recovery:Recovery',
    'random_labels': 'ptr_sim.sources.random_labels:RandomLabels',
    'shuffled_labels': 'ptr_sim.sources.shuffled_labels:ShuffledLabels',
    'delayed': 'ptr_sim.sources.delayed:Delayed',
    # hard, correctly labelled: graded operators, structural defects, a bad stretch
    'slow': 'ptr_sim.sources.slow:Slow',
    'hesitant': 'ptr_sim.sources.hesitant:Hesitant',
    'jerky': 'ptr_sim.sources.jerky:Jerky',
    'detour': 'ptr_sim.sources.detour:Detour',
    'early_release': 'ptr_sim.sources.early_release:EarlyRelease',
    'grasp_miss': 'ptr_sim.sources.misread:GraspMiss',
    'wrong_target': 'ptr_sim.sources.misread:WrongTarget',
    'partial': 'ptr_sim.sources.partial:Partial',
    # near-right labels (a lag of 1-3 steps is delayed_<k>)
    'gain': 'ptr_sim.sources.near_labels:Gain',
    'flipped_axis': 'ptr_sim.sources.near_labels:FlippedAxis',
    'gripper_sign': 'ptr_sim.sources.near_labels:GripperSign',
}

_VALUE = re.compile(r'^\d+(\.\d+)?$')


def behavior(name: str) -> type[SourceBehavior]:
    module, _, cls_name = SOURCES[name].partition(':')
    cls: type[SourceBehavior] = getattr(importlib.import_module(module), cls_name)
    return cls


@dataclass(frozen=True)
class Source:
    """A source tag, parsed: its kind (a name in ``SOURCES``) and the value it carries."""

    kind: str
    value: float = 0.0  # noisy: sigma; delayed: steps; 0 for kinds without a value

    @classmethod
    def parse(cls, tag: str) -> Source:
        tag = tag.strip()
        for name in SOURCES:
            kind = behavior(name)
            if kind.param is None and tag == name:
                return cls(name)
            rest = tag[len(name) + 1:]
            if kind.param is not None and tag.startswith(f'{name}_') and _VALUE.match(rest):
                return cls(name, kind.check(tag, float(rest)))
        usages = [behavior(n).usage for n in SOURCES]
        msg = f'unknown source {tag!r}: use {", ".join(usages[:-1])} or {usages[-1]}'
        raise PtrError(msg)

    @property
    def behavior(self) -> type[SourceBehavior]:
        return behavior(self.kind)

    @property
    def tag(self) -> str:
        if not self.behavior.param:
            return self.kind
        value = self.value
        return f'{self.kind}_{value}' if isinstance(value, int) else f'{self.kind}_{value:g}'

    @property
    def low_attribution(self) -> bool:
        """The recorded labels are not the executed actions."""
        return self.behavior.low_attribution


def parse_mix(spec: str) -> dict[str, int]:
    """``'expert:10,noisy_0.3:5'`` → ``{'expert': 10, 'noisy_0.3': 5}`` (tags validated)."""
    out: dict[str, int] = {}
    for part in (p.strip() for p in spec.split(',')):
        if not part:
            continue
        tag, sep, count = part.partition(':')
        if not sep or not count.strip().isdigit():
            msg = f'source mix item {part!r}: expected <source>:<episodes>, e.g. expert:10'
            raise PtrError(msg)
        src = Source.parse(tag)
        out[src.tag] = out.get(src.tag, 0) + int(count)
    if not out:
        msg = f'source mix {spec!r} names no episodes'
        raise PtrError(msg)
    return out


@dataclass
class Rollout:
    """One episode: T actions between T + 1 observations."""

    task: str
    seed: int
    source: Source
    obs: FloatArray  # [T + 1, 39] Meta-World observations
    fingers: FloatArray  # [T + 1, 2] r_close, l_close
    executed: FloatArray  # [T, 4] what the arm did
    recorded: FloatArray  # [T, 4] what the command topic says
    success: bool
    success_step: int | None  # first step after which the task was solved
    images: dict[str, dict[int, npt.NDArray[np.uint8]]] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.executed)


def rollout(
    env: MetaWorldEnv,
    setup: SimSetup,
    source: Source,
    seed: int,
    *,
    max_steps: int = 150,
    settle_steps: int | None = 10,
    camera_stride: int = 4,
    render: bool = True,
    progress: Callable[[], None] | None = None,
) -> Rollout:
    """Run one episode of ``source`` on the goal drawn from ``seed``.

    The episode ends ``settle_steps`` after the first success, or after ``max_steps``;
    ``settle_steps=None`` records every episode to ``max_steps`` (a fixed horizon: the source
    keeps acting after success, the expert holds the object at the goal, so an episode's length
    says nothing about its success). Cameras are rendered every ``camera_stride`` control steps
    (80 Hz / 4 = 20 Hz by default).
    """
    rng = np.random.default_rng([seed, 7])
    how = source.behavior(source.value, env, seed, rng, max_steps)
    obs = [env.reset(seed).copy()]
    fingers = [env.fingers()]
    images: dict[str, dict[int, npt.NDArray[np.uint8]]] = {c.role: {} for c in setup.cameras}

    def snap(t: int) -> None:
        if render and t % camera_stride == 0:
            for cam in setup.cameras:
                images[cam.role][t] = env.render(cam.camera, rotate180=cam.rotate180)

    snap(0)
    executed: list[FloatArray] = []
    success_step: int | None = None
    for t in range(max_steps):
        act = how.act(env.expert_action(), t, rng)
        executed.append(act)
        o, done = env.step(act)
        obs.append(o.copy())
        fingers.append(env.fingers())
        snap(t + 1)
        if progress is not None:
            progress()
        if done and success_step is None:
            success_step = t + 1
        if settle_steps is not None and success_step is not None \
                and t + 1 - success_step >= settle_steps:
            break
    exe = np.asarray(executed, dtype=np.float64)
    rec = how.label(exe, rng)
    return Rollout(
        task=env.task, seed=seed, source=source, obs=np.asarray(obs), fingers=np.asarray(fingers),
        executed=exe, recorded=rec, success=success_step is not None, success_step=success_step,
        images=images,
    )
