"""Serving a trained policy: ``PolicyRunner`` for the ROS node and the simulator evaluation.

::

    runner = PolicyRunner.from_checkpoint('runs/x/final', device='cpu')
    runner.reset()                                            # at an episode start
    chunk = runner.infer(state_history, images, 'arm')        # [L, Da_robot], physical units

``state_history`` is ``[To', Ds_robot]`` (oldest first; shorter histories repeat their first
frame), ``images`` maps each camera role of the robot to ``[To', H, W, C]`` uint8 (uint16 depth)
frames of any size (resized like at ingest). Preprocessing is ``ptr_core.preprocess`` — the exact
code the training loader runs. Loading reads safetensors + JSON only.

``ChunkExecutor`` turns chunks into per-tick commands, the same way on the arm (``policy_node``)
and in the simulator (``ptr_sim.evaluate``). Time is counted in control ticks. A chunk ``[L, Da]``
predicted from the observation sampled at tick ``s`` holds the actions for ticks ``s .. s+L-1``
(action ``i`` of a training sample is the command at ``t + i``). A new chunk is requested every
``execute_steps`` (K) ticks, so each chunk is executed for its first K actions before the next
one takes over; the actions of a chunk that fall before its arrival (inference latency) are
never used. With temporal ensembling (ACT, Zhao et al. 2023) the command at tick ``t`` is the
weighted mean of every live chunk's prediction for ``t``, weight ``exp(-decay * j)`` with
``j = 0`` the oldest chunk; overlapping chunks blend, so the motion neither pauses nor jumps
where chunks meet. Without it, the newest chunk that covers ``t`` wins.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ptr_core.checkpoint import Checkpoint, load_checkpoint, load_matching
from ptr_core.errors import PtrError
from ptr_core.policies.policy import ActionPolicy, build_policy
from ptr_core.preprocess import Preprocessor, observation_batch

__all__ = ['ChunkExecutor', 'ExecutionConfig', 'PolicyRunner', 'load_policy']


def load_policy(path: str | Path, *, use_ema: bool = True) -> tuple[ActionPolicy, Checkpoint]:
    """Rebuild the policy stored in a checkpoint (EMA weights by default), on the CPU."""
    ckpt = load_checkpoint(path)
    policy = build_policy(ckpt.config.policy, ckpt.preprocessor)
    state = ckpt.ema if use_ema and ckpt.ema is not None else ckpt.model
    weights = 'ema' if state is ckpt.ema else 'model'
    # names every tensor whose shape or name does not fit the stored config
    load_matching(policy, state, reinit_mismatched=False,
                  source=f'{Path(path) / weights}.safetensors')
    return policy, ckpt


class PolicyRunner:
    """A policy, its preprocessing and its robots, ready for closed-loop inference."""

    def __init__(
        self,
        policy: ActionPolicy,
        preprocessor: Preprocessor,
        robots: Mapping[str, Any],
        *,
        device: str | torch.device = 'cpu',
        seed: int = 0,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.policy = policy.to(self.device).eval()
        self.preprocessor = preprocessor
        self._robots = {k: dict(v) for k, v in robots.items()}
        self.seed = seed
        self.checkpoint = checkpoint
        self._generator = torch.Generator(device='cpu')
        self.reset()

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = 'cpu', use_ema: bool = True,
        *, seed: int = 0,
    ) -> PolicyRunner:
        policy, ckpt = load_policy(path, use_ema=use_ema)
        return cls(policy, ckpt.preprocessor, ckpt.robots, device=device, seed=seed,
                   checkpoint=ckpt)

    # -- what the node asks -------------------------------------------------------------------
    @property
    def robots(self) -> list[str]:
        return list(self.preprocessor.layout.robots)

    def profile(self, robot: str) -> dict[str, Any]:
        """The robot's manifest entry: ``profile``, joint names/limits, camera roles,
        ``image_size`` [H, W], ``rate_hz``, state/action names."""
        if robot not in self._robots:
            msg = f'unknown robot {robot!r}; this policy knows {self.robots}'
            raise PtrError(msg)
        return copy.deepcopy(self._robots[robot])

    @property
    def obs_horizon(self) -> int:
        return self.preprocessor.obs_horizon

    @property
    def chunk_length(self) -> int:
        return self.policy.chunk_length

    @property
    def camera_roles(self) -> tuple[str, ...]:
        return self.preprocessor.layout.camera_roles

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` the policy sees: the checkpoint's layout owns it (the node decodes camera
        frames to it, the preprocessing resizes anything else to it)."""
        h, w = self.preprocessor.layout.image_size
        return int(h), int(w)

    @property
    def generator(self) -> torch.Generator:
        """The sampling noise generator (batched callers pass it to ``sample_actions``)."""
        return self._generator

    def reset(self) -> None:
        """Start a new episode: the sampling noise sequence restarts from the runner's seed."""
        self._generator.manual_seed(self.seed)

    def infer(
        self,
        state_history: npt.ArrayLike,
        images: Mapping[str, npt.NDArray[Any]],
        robot: str,
        steps: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """The next action chunk ``[L, Da_robot]`` in physical units."""
        chunk: npt.NDArray[np.float32] = self.infer_batch([(state_history, images)], robot,
                                                          steps)[0]
        return chunk

    @torch.no_grad()
    def infer_batch(
        self,
        observations: Sequence[tuple[npt.ArrayLike, Mapping[str, npt.NDArray[Any]]]],
        robot: str,
        steps: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """One chunk per ``(state_history, images)`` observation, sampled in one batch:
        ``[N, L, Da_robot]`` in physical units (the simulator runs N arms in lockstep)."""
        parts = [observation_batch(state, imgs, robot, self.preprocessor)
                 for state, imgs in observations]
        batch = {k: torch.cat([p[k] for p in parts]).to(self.device) for k in parts[0]}
        actions = self.policy.sample_actions(batch, steps, generator=self._generator)
        return self.preprocessor.normalizer.unnormalize_action(
            actions.float().cpu().numpy(), robot
        )


@dataclass(frozen=True)
class ExecutionConfig:
    """How chunks become commands: K, and whether overlapping chunks blend."""

    execute_steps: int  # K: chunk actions executed before the next chunk is requested
    ensemble: bool = True  # temporal ensembling of overlapping chunks
    decay: float = 0.01  # ensembling weights exp(-decay * j), j = 0 the oldest chunk

    def __post_init__(self) -> None:
        if self.execute_steps < 1:
            msg = f'execute_steps must be >= 1, got {self.execute_steps}'
            raise PtrError(msg)
        if self.decay < 0:
            msg = f'ensemble_decay must be >= 0, got {self.decay}'
            raise PtrError(msg)


@dataclass(frozen=True)
class _Chunk:
    start: int
    actions: npt.NDArray[np.float64]  # [L, Da]

    @property
    def end(self) -> int:  # first tick not covered
        return self.start + len(self.actions)


class ChunkExecutor:
    """Holds the live chunks and answers "what to command at tick t" (thread-safe)."""

    def __init__(self, config: ExecutionConfig) -> None:
        self.config = config
        self._chunks: list[_Chunk] = []
        self._last_request: int | None = None
        self._lock = threading.Lock()

    @property
    def execute_steps(self) -> int:
        return self.config.execute_steps

    def reset(self) -> None:
        """Forget every chunk (a new episode, a stop or a stale observation)."""
        with self._lock:
            self._chunks.clear()
            self._last_request = None

    def add(self, chunk: npt.ArrayLike, start: int) -> None:
        """A chunk predicted from the observation sampled at tick ``start``."""
        actions = np.array(chunk, dtype=np.float64, ndmin=2)
        with self._lock:
            if self._chunks and actions.shape[1] != self._chunks[-1].actions.shape[1]:
                msg = f'chunk has {actions.shape[1]} action dims, earlier chunks have ' \
                      f'{self._chunks[-1].actions.shape[1]}'
                raise PtrError(msg)
            self._chunks.append(_Chunk(start, actions))
            self._chunks.sort(key=lambda c: c.start)

    def should_request(self, tick: int) -> bool:
        """True when a new chunk is due at ``tick`` (first one, or K ticks since the last)."""
        with self._lock:
            return (self._last_request is None
                    or tick - self._last_request >= self.config.execute_steps)

    def requested(self, tick: int) -> None:
        with self._lock:
            self._last_request = tick

    def covered_until(self) -> int | None:
        """First tick that no live chunk covers (None without chunks)."""
        with self._lock:
            return max((c.end for c in self._chunks), default=None)

    def plan(self, tick: int, horizon: int) -> npt.NDArray[np.float64] | None:
        """Blended actions for ticks ``tick .. tick+n-1`` (``n <= horizon``; None if none).

        Chunks that end before ``tick`` are dropped. The plan stops at the first tick that no
        chunk covers.
        """
        with self._lock:
            self._chunks = [c for c in self._chunks if c.end > tick]
            rows: list[npt.NDArray[np.float64]] = []
            for t in range(tick, tick + max(horizon, 1)):
                live = [c for c in self._chunks if c.start <= t < c.end]
                if not live:
                    break
                if not self.config.ensemble:
                    newest = live[-1]
                    rows.append(newest.actions[t - newest.start])
                    continue
                weights = np.exp(-self.config.decay * np.arange(len(live), dtype=np.float64))
                preds = np.stack([c.actions[t - c.start] for c in live])
                rows.append(weights @ preds / weights.sum())
            return np.stack(rows) if rows else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)
