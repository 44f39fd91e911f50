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
========================  ===============================================  ====================

The last three are *low-attribution*: the recorded action does not explain what happened next,
as in a badly synchronized or mislabeled recording. ``noisy`` and ``recovery`` are degraded but
their labels are what the arm did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError
from ptr_sim.env import MetaWorldEnv
from ptr_sim.setups import SimSetup

__all__ = ['Rollout', 'Source', 'SourceKind', 'parse_mix', 'rollout']

FloatArray = npt.NDArray[np.float64]


class SourceKind(str, Enum):
    EXPERT = 'expert'
    NOISY = 'noisy'
    RECOVERY = 'recovery'
    RANDOM_LABELS = 'random_labels'
    SHUFFLED_LABELS = 'shuffled_labels'
    DELAYED = 'delayed'


_PATTERN = re.compile(
    r'^(expert|recovery|random_labels|shuffled_labels|noisy_(?P<sigma>\d+(\.\d+)?)'
    r'|delayed_(?P<k>\d+))$'
)


@dataclass(frozen=True)
class Source:
    kind: SourceKind
    sigma: float = 0.0
    delay: int = 0

    @classmethod
    def parse(cls, tag: str) -> Source:
        m = _PATTERN.match(tag.strip())
        if m is None:
            msg = (
                f'unknown source {tag!r}: use expert, noisy_<sigma> (e.g. noisy_0.3), recovery, '
                'random_labels, shuffled_labels or delayed_<steps> (e.g. delayed_4)'
            )
            raise PtrError(msg)
        if m.group('sigma') is not None:
            sigma = float(m.group('sigma'))
            if sigma <= 0:
                msg = f'source {tag!r}: the noise sigma must be > 0'
                raise PtrError(msg)
            return cls(SourceKind.NOISY, sigma=sigma)
        if m.group('k') is not None:
            k = int(m.group('k'))
            if k < 1:
                msg = f'source {tag!r}: the delay must be at least 1 step'
                raise PtrError(msg)
            return cls(SourceKind.DELAYED, delay=k)
        return cls(SourceKind(m.group(1)))

    @property
    def tag(self) -> str:
        if self.kind is SourceKind.NOISY:
            return f'noisy_{self.sigma:g}'
        if self.kind is SourceKind.DELAYED:
            return f'delayed_{self.delay}'
        return str(self.kind.value)

    @property
    def low_attribution(self) -> bool:
        """The recorded labels are not the executed actions."""
        return self.kind in (
            SourceKind.RANDOM_LABELS, SourceKind.SHUFFLED_LABELS, SourceKind.DELAYED
        )


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


def _expert_actions(env: MetaWorldEnv, seed: int, max_steps: int) -> FloatArray:
    env.reset(seed)
    acts = []
    for _ in range(max_steps):
        a = env.expert_action()
        acts.append(a)
        _, done = env.step(a)
        if done:
            break
    return np.asarray(acts)


def _detour_plan(rng: np.random.Generator, max_steps: int) -> dict[int, FloatArray]:
    """Steps at which a recovery episode is pushed off course, and the push."""
    plan: dict[int, FloatArray] = {}
    start = int(rng.integers(5, 25))
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.integers(8, 15))
        direction = rng.normal(size=3)
        push = np.concatenate([direction / np.linalg.norm(direction), [rng.choice([-1.0, 1.0])]])
        for t in range(start, min(start + length, max_steps)):
            plan[t] = push
        start += length + int(rng.integers(15, 30))
    return plan


def rollout(
    env: MetaWorldEnv,
    setup: SimSetup,
    source: Source,
    seed: int,
    *,
    max_steps: int = 150,
    settle_steps: int = 10,
    camera_stride: int = 4,
    render: bool = True,
    progress: Callable[[], None] | None = None,
) -> Rollout:
    """Run one episode of ``source`` on the goal drawn from ``seed``.

    The episode ends ``settle_steps`` after the first success, or after ``max_steps``. Cameras are
    rendered every ``camera_stride`` control steps (80 Hz / 4 = 20 Hz by default).
    """
    rng = np.random.default_rng([seed, 7])
    donor: FloatArray | None = None
    if source.kind is SourceKind.SHUFFLED_LABELS:
        donor = _expert_actions(env, seed + 500_000_000, max_steps)
    detours = _detour_plan(rng, max_steps) if source.kind is SourceKind.RECOVERY else {}
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
        act = env.expert_action()
        if source.kind is SourceKind.NOISY:
            act = np.clip(act + rng.normal(0.0, source.sigma, size=4), -1.0, 1.0)
        elif t in detours:
            act = detours[t]
        executed.append(act)
        o, done = env.step(act)
        obs.append(o.copy())
        fingers.append(env.fingers())
        snap(t + 1)
        if progress is not None:
            progress()
        if done and success_step is None:
            success_step = t + 1
        if success_step is not None and t + 1 - success_step >= settle_steps:
            break
    exe = np.asarray(executed, dtype=np.float64)
    rec = _labels(source, exe, rng, donor)
    return Rollout(
        task=env.task, seed=seed, source=source, obs=np.asarray(obs), fingers=np.asarray(fingers),
        executed=exe, recorded=rec, success=success_step is not None, success_step=success_step,
        images=images,
    )


def _labels(
    source: Source, exe: FloatArray, rng: np.random.Generator, donor: FloatArray | None
) -> FloatArray:
    T = len(exe)
    if source.kind is SourceKind.RANDOM_LABELS:
        return rng.uniform(-1.0, 1.0, size=exe.shape)
    if source.kind is SourceKind.SHUFFLED_LABELS:
        assert donor is not None
        assert len(donor)
        idx = np.minimum(np.arange(T), len(donor) - 1)
        return np.asarray(donor[idx], dtype=np.float64)
    if source.kind is SourceKind.DELAYED:
        idx = np.maximum(np.arange(T) - source.delay, 0)
        return np.asarray(exe[idx], dtype=np.float64)
    return np.array(exe, dtype=np.float64)
