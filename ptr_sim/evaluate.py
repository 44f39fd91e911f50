"""Closed-loop evaluation in Meta-World: success rate on held-out goals.

``evaluate`` runs ``episodes`` goals (seeds at and above ``EVAL_SEED_OFFSET``, never recorded) in
lockstep batches of simulators. A ``StepPolicy`` sees, for every running simulator, the state in
the recording setup's ingest layout (``flat_state``: joints, then poses — exactly what
``ptr ingest`` builds from that setup's bags) and optionally the camera images at every control
step, and returns the actions to apply. ``CheckpointPolicy`` serves a trained checkpoint through
``PolicyRunner``'s preprocessing, batched over simulators, executing the first ``execute``
actions of each predicted chunk before planning again. An episode succeeds when Meta-World's
``success`` flag is raised within ``max_steps``.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError
from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.setups import SimSetup, flat_state, get_setup

__all__ = [
    'CheckpointPolicy', 'EvalResult', 'ExpertPolicy', 'StepPolicy', 'eval_seeds', 'evaluate',
]

log = logging.getLogger(__name__)


class StepPolicy(Protocol):
    def reset(self, n: int) -> None:
        """A new batch of ``n`` episodes starts (clear any observation history and plan)."""

    def __call__(
        self,
        state: npt.NDArray[np.float32],
        images: dict[str, npt.NDArray[np.uint8]],
        active: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        """``state [N, Ds]``, ``images role → [N, H, W, 3]`` at this step → actions ``[N, 4]``.

        Called at every control step, so a chunked policy keeps its own history and plan.
        """
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
    """The scripted expert as a ``StepPolicy`` (reads the simulators directly): a sanity bound."""

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
        return np.stack([env.expert_action() for env in self.envs])


def evaluate(
    task: str,
    policy: StepPolicy,
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
    policy: StepPolicy,
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
    for t in range(max_steps):
        if done.all():
            break
        state = np.stack([flat_state(setup, env.obs, env.fingers()) for env in envs])
        frames: dict[str, npt.NDArray[np.uint8]] = {}
        if images:
            for cam in setup.cameras:
                frames[cam.role] = np.stack(
                    [env.render(cam.camera, rotate180=cam.rotate180) for env in envs])
        actions = np.asarray(policy(state, frames, ~done), dtype=np.float64)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            _, ok = env.step(actions[i])
            if ok:
                done[i] = True
                steps[i] = t + 1
    return done.tolist(), steps.tolist()


class CheckpointPolicy:
    """A trained checkpoint as a ``StepPolicy`` for one robot (recording setup).

    Observations go through the checkpoint's own ``Preprocessor`` (``observation_batch``, the
    code the training loader and the ROS node run); the chunk is sampled for all running
    simulators in one batch; the first ``execute`` actions are applied, then it plans again.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        robot: str,
        *,
        execute: int = 4,
        steps: int | None = None,
        device: str = 'cpu',
        seed: int = 0,
    ) -> None:
        from ptr_core.inference import PolicyRunner

        self.runner = PolicyRunner.from_checkpoint(checkpoint, device=device, seed=seed)
        if robot not in self.runner.robots:
            msg = f'{checkpoint}: the policy does not know robot {robot!r} ({self.runner.robots})'
            raise PtrError(msg)
        self.robot = robot
        self.execute = max(1, min(execute, self.runner.chunk_length))
        self.steps = steps
        self._history: list[deque[npt.NDArray[np.float32]]] = []
        self._images: list[dict[str, deque[npt.NDArray[np.uint8]]]] = []
        self._plan: npt.NDArray[np.float64] = np.zeros((0, 0, 4))
        self._cursor = 0

    def reset(self, n: int) -> None:
        horizon = self.runner.obs_horizon
        self._history = [deque(maxlen=horizon) for _ in range(n)]
        self._images = [{} for _ in range(n)]
        self._cursor = self.execute  # plan at the first call
        self.runner.reset()

    def __call__(
        self,
        state: npt.NDArray[np.float32],
        images: dict[str, npt.NDArray[np.uint8]],
        active: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        import torch

        from ptr_core.preprocess import observation_batch

        horizon = self.runner.obs_horizon
        for i in range(len(state)):
            self._history[i].append(np.asarray(state[i], dtype=np.float32))
            for role, frames in images.items():
                self._images[i].setdefault(role, deque(maxlen=horizon)).append(frames[i])
        if self._cursor >= self.execute:
            pre = self.runner.preprocessor
            rows = [i for i in range(len(state)) if active[i]]
            parts = [
                observation_batch(
                    np.stack(self._history[i]),
                    {r: np.stack(q) for r, q in self._images[i].items()}, self.robot, pre,
                )
                for i in rows
            ]
            batch = {k: torch.cat([p[k] for p in parts]).to(self.runner.device)
                     for k in parts[0]}
            with torch.no_grad():
                chunk = self.runner.policy.sample_actions(
                    batch, self.steps, generator=self.runner._generator)
            chunk_np = chunk.float().cpu().numpy()
            plan = np.zeros((len(state), chunk_np.shape[1], 4))
            for j, i in enumerate(rows):
                plan[i] = pre.normalizer.unnormalize_action(chunk_np[j], self.robot)[:, :4]
            self._plan = plan
            self._cursor = 0
        out = self._plan[:, self._cursor]
        self._cursor += 1
        return np.asarray(out, dtype=np.float64)
