"""Closed-loop evaluation in Meta-World: success rate on held-out goals.

``evaluate`` runs ``episodes`` goals (seeds at and above ``EVAL_SEED_OFFSET``, never recorded) in
lockstep batches of simulators. A ``ChunkPolicy`` sees, for every running simulator, the state in
the recording setup's ingest layout (``flat_state``: joints, then poses — exactly what
``ptr ingest`` builds from that setup's bags) and optionally the camera images, and returns the
next actions to execute open-loop (``[N, K, 4]``; the harness runs them, then asks again). An
episode succeeds when Meta-World's ``success`` flag is raised within ``max_steps``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ptr_core.sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_core.sim.setups import SimSetup, flat_state, get_setup

__all__ = ['ChunkPolicy', 'EvalResult', 'ExpertPolicy', 'eval_seeds', 'evaluate']

log = logging.getLogger(__name__)


class ChunkPolicy(Protocol):
    def reset(self, n: int) -> None:
        """A new batch of ``n`` episodes starts (clear any observation history)."""

    def __call__(
        self,
        state: npt.NDArray[np.float32],
        images: dict[str, npt.NDArray[np.uint8]],
        active: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        """``state [N, Ds]``, ``images role → [N, H, W, 3]`` → actions ``[N, K, 4]``."""
        ...


@dataclass(frozen=True)
class EvalResult:
    task: str
    setup: str
    seeds: tuple[int, ...]
    success: tuple[bool, ...]
    steps: tuple[int, ...]  # steps to success (max_steps when failed)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success)) if self.success else 0.0

    def to_json(self) -> dict[str, object]:
        return {'task': self.task, 'setup': self.setup, 'episodes': len(self.success),
                'success_rate': self.success_rate, 'seeds': list(self.seeds),
                'success': list(self.success), 'steps': list(self.steps)}


def eval_seeds(episodes: int, seed: int = 0) -> list[int]:
    """Held-out goal seeds: disjoint from every recording seed."""
    return [EVAL_SEED_OFFSET + seed * 100_000 + i for i in range(episodes)]


class ExpertPolicy:
    """The scripted expert as a ``ChunkPolicy`` (reads the simulators directly): a sanity bound."""

    def __init__(self, envs: Sequence[MetaWorldEnv]) -> None:
        self.envs = envs

    def reset(self, n: int) -> None:
        pass

    def __call__(
        self,
        state: npt.NDArray[np.float32],
        images: dict[str, npt.NDArray[np.uint8]],
        active: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        return np.stack([env.expert_action() for env in self.envs])[:, None, :]


def evaluate(
    task: str,
    policy: ChunkPolicy,
    *,
    setup: str | SimSetup = 'a',
    episodes: int = 50,
    seed: int = 0,
    max_steps: int = 150,
    batch: int = 25,
    images: bool = False,
    envs: list[MetaWorldEnv] | None = None,
) -> EvalResult:
    """Success rate of ``policy`` on ``episodes`` held-out goals of ``task``."""
    spec = get_setup(setup) if isinstance(setup, str) else setup
    seeds = eval_seeds(episodes, seed)
    pool = envs if envs is not None else []
    while len(pool) < min(batch, episodes):
        pool.append(MetaWorldEnv(task))
    success: list[bool] = []
    steps: list[int] = []
    for start in range(0, episodes, batch):
        chunk = seeds[start:start + batch]
        group = pool[:len(chunk)]
        if isinstance(policy, ExpertPolicy):
            policy.envs = group
        ok, n_steps = _run_batch(group, chunk, policy, spec, max_steps, images)
        success += ok
        steps += n_steps
    log.info('%s setup %s: success %.2f over %d goals', task, spec.name, np.mean(success),
             episodes)
    return EvalResult(task, spec.name, tuple(seeds), tuple(success), tuple(steps))


def _run_batch(
    envs: list[MetaWorldEnv],
    seeds: Sequence[int],
    policy: ChunkPolicy,
    setup: SimSetup,
    max_steps: int,
    images: bool,
) -> tuple[list[bool], list[int]]:
    n = len(envs)
    for env, s in zip(envs, seeds):
        env.reset(s)
    policy.reset(n)
    done = np.zeros(n, dtype=bool)
    steps = np.full(n, max_steps, dtype=int)
    t = 0
    while t < max_steps and not done.all():
        state = np.stack([flat_state(setup, env.obs, env.fingers()) for env in envs])
        frames: dict[str, npt.NDArray[np.uint8]] = {}
        if images:
            for cam in setup.cameras:
                frames[cam.role] = np.stack(
                    [env.render(cam.camera, rotate180=cam.rotate180) for env in envs])
        actions = np.asarray(policy(state, frames, ~done), dtype=np.float64)
        for k in range(actions.shape[1]):
            if t >= max_steps:
                break
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                _, ok = env.step(actions[i, k])
                if ok:
                    done[i] = True
                    steps[i] = t + 1
            t += 1
    return done.tolist(), steps.tolist()
