"""Closed-loop evaluation in Meta-World: success rate on held-out goals.

``evaluate`` runs ``episodes`` goals (seeds at and above ``EVAL_SEED_OFFSET``, never recorded) in
lockstep batches of simulators. A ``StepPolicy`` sees, for every running simulator, the state in
the recording setup's ingest layout (``flat_state``: joints, then poses — exactly what
``ptr ingest`` builds from that setup's bags) and optionally the camera images at every control
step, and returns the actions to apply. ``CheckpointPolicy`` serves a trained checkpoint through
``PolicyRunner``'s preprocessing, batched over simulators, and executes the chunks with the
policy node's ``ChunkExecutor`` (K actions of each chunk, optional temporal ensembling). An
episode succeeds when Meta-World's ``success`` flag is raised within ``max_steps``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError
from ptr_core.history import ObservationHistory
from ptr_core.inference import ChunkExecutor, ExecutionConfig, PolicyRunner
from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.setups import SimSetup, flat_state, get_setup

__all__ = [
    'SPLITS', 'CheckpointPolicy', 'EvalResult', 'ExpertPolicy', 'StepPolicy', 'eval_seeds',
    'evaluate',
]

#: The held-out goal sets: ``dev`` for every choice of method or default, ``test`` only for the
#: reported tables. Seeds of the two never meet: ``dev`` draws from [EVAL_SEED_OFFSET,
#: EVAL_SEED_OFFSET + TEST_OFFSET), ``test`` from the TEST_OFFSET above it.
SPLITS = ('dev', 'test')
TEST_OFFSET = 500_000_000
GOALS_PER_SEED = 100_000  # goal seeds per evaluation seed (episodes past it are refused)

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


def eval_seeds(episodes: int, seed: int = 0, split: str = 'dev') -> list[int]:
    """Held-out goal seeds of ``split``: disjoint from every recording seed, and the ``dev``
    and ``test`` goals disjoint from each other whatever the seeds (``dev`` is the range every
    run before issue 26 evaluated on, tuned on included)."""
    if split not in SPLITS:
        msg = f'evaluation split {split!r}: use {" or ".join(SPLITS)}'
        raise PtrError(msg)
    if not 0 <= seed < TEST_OFFSET // GOALS_PER_SEED or not 0 <= episodes <= GOALS_PER_SEED:
        msg = (f'evaluation seed {seed} with {episodes} goals: the seed must be in [0, '
               f'{TEST_OFFSET // GOALS_PER_SEED}) and the goals at most {GOALS_PER_SEED}')
        raise PtrError(msg)
    base = EVAL_SEED_OFFSET + (TEST_OFFSET if split == 'test' else 0) + seed * GOALS_PER_SEED
    return [base + i for i in range(episodes)]


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
    split: str = 'dev',
    max_steps: int = 150,
    batch: int = 25,
    images: bool = False,
    envs: list[MetaWorldEnv] | None = None,
) -> EvalResult:
    """Success rate of ``policy`` on ``episodes`` held-out goals of ``task`` (the ``split``'s:
    ``dev`` to choose, ``test`` to report)."""
    spec = get_setup(setup) if isinstance(setup, str) else setup
    seeds = eval_seeds(episodes, seed, split)
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

    Observations go through the checkpoint's own ``Preprocessor`` (``PolicyRunner.infer_batch``,
    the code the training loader and the ROS node run); chunks are sampled for all due
    simulators in one batch and turned into per-step actions by one ``ChunkExecutor`` per
    simulator — the executor ``policy_node`` runs, with the same K, ensembling and tick timing.
    ``latency_ticks``: a chunk predicted at tick ``s`` is usable from tick ``s + latency_ticks``
    (the node's is at least 1: its chunk arrives after the tick that asked for it); before the
    first chunk is usable the action is zero (for Meta-World's end-effector deltas: hold still).
    """

    def __init__(
        self,
        checkpoint: str | Path,
        robot: str,
        *,
        execution: ExecutionConfig | None = None,
        latency_ticks: int = 0,
        steps: int | None = None,
        device: str = 'cpu',
        seed: int = 0,
    ) -> None:
        self.runner = PolicyRunner.from_checkpoint(checkpoint, device=device, seed=seed)
        if robot not in self.runner.robots:
            msg = f'{checkpoint}: the policy does not know robot {robot!r} ({self.runner.robots})'
            raise PtrError(msg)
        if latency_ticks < 0:
            msg = f'latency_ticks must be >= 0, got {latency_ticks}'
            raise PtrError(msg)
        self.robot = robot
        self.action_dim = len(self.runner.profile(robot)['action_names'])
        length = self.runner.chunk_length
        execution = execution or ExecutionConfig(execute_steps=4, ensemble=False)
        # K past the chunk's end would leave ticks without an action.
        self.execution = replace(execution, execute_steps=min(execution.execute_steps, length))
        self.latency_ticks = latency_ticks
        self.steps = steps
        self._histories: list[ObservationHistory] = []
        self._executors: list[ChunkExecutor] = []
        self._pending: list[tuple[int, int, int, npt.NDArray[np.float32]]] = []
        self._tick = 0

    def reset(self, n: int) -> None:
        self._histories = [ObservationHistory(self.runner.obs_horizon) for _ in range(n)]
        self._executors = [ChunkExecutor(self.execution) for _ in range(n)]
        self._pending = []  # (usable from tick, simulator, start tick, chunk)
        self._tick = 0
        self.runner.reset()

    def __call__(
        self,
        state: npt.NDArray[np.float32],
        images: dict[str, npt.NDArray[np.uint8]],
        active: npt.NDArray[np.bool_],
    ) -> npt.NDArray[np.float64]:
        self._tick += 1
        tick = self._tick
        for i, history in enumerate(self._histories):
            history.push(state[i], {role: frames[i] for role, frames in images.items()}, 0.0)
        due = [i for i in range(len(state))
               if active[i] and self._executors[i].should_request(tick)]
        if due:
            observations = [self._histories[i].arrays()[:2] for i in due]
            chunks = self.runner.infer_batch(observations, self.robot, self.steps)
            for i, chunk in zip(due, chunks):
                self._executors[i].requested(tick)
                self._pending.append((tick + self.latency_ticks, i, tick, chunk))
        ready = [p for p in self._pending if p[0] <= tick]
        self._pending = [p for p in self._pending if p[0] > tick]
        for _, i, start, chunk in ready:
            self._executors[i].add(chunk, start)
        out = np.zeros((len(state), self.action_dim))
        for i, executor in enumerate(self._executors):
            plan = executor.plan(tick, 1)
            if plan is not None:
                out[i] = plan[0]
        return out
