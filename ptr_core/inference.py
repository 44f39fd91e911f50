"""Serving a trained policy: ``PolicyRunner`` for the ROS node and the simulator evaluation.

::

    runner = PolicyRunner.from_checkpoint('runs/x/final', device='cpu')
    runner.reset()                                            # at an episode start
    chunk = runner.infer(state_history, images, 'arm')        # [L, Da_robot], physical units

``state_history`` is ``[To', Ds_robot]`` (oldest first; shorter histories repeat their first
frame), ``images`` maps each camera role of the robot to ``[To', H, W, C]`` uint8 (uint16 depth)
frames of any size (resized like at ingest). Preprocessing is ``ptr_core.preprocess`` — the exact
code the training loader runs. Loading reads safetensors + JSON only.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ptr_core.checkpoint import Checkpoint, load_checkpoint
from ptr_core.errors import CheckpointError, PtrError
from ptr_core.policies.policy import ActionPolicy, build_policy
from ptr_core.preprocess import Preprocessor, observation_batch

__all__ = ['PolicyRunner', 'load_policy']


def load_policy(path: str | Path, *, use_ema: bool = True) -> tuple[ActionPolicy, Checkpoint]:
    """Rebuild the policy stored in a checkpoint (EMA weights by default), on the CPU."""
    ckpt = load_checkpoint(path)
    policy = build_policy(ckpt.config.policy, ckpt.preprocessor,
                          chunk_length=ckpt.config.data.chunk_length)
    state = ckpt.ema if use_ema and ckpt.ema is not None else ckpt.model
    try:
        policy.load_state_dict(state)
    except RuntimeError as err:
        msg = f'{path}: weights do not fit the stored config: {str(err).splitlines()[0]}'
        raise CheckpointError(msg) from err
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
    def generator(self) -> torch.Generator:
        """The sampling noise generator (batched callers pass it to ``sample_actions``)."""
        return self._generator

    def reset(self) -> None:
        """Start a new episode: the sampling noise sequence restarts from the runner's seed."""
        self._generator.manual_seed(self.seed)

    @torch.no_grad()
    def infer(
        self,
        state_history: npt.ArrayLike,
        images: Mapping[str, npt.NDArray[Any]],
        robot: str,
        steps: int | None = None,
    ) -> npt.NDArray[np.float32]:
        """The next action chunk ``[L, Da_robot]`` in physical units."""
        batch = observation_batch(state_history, images, robot, self.preprocessor)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        actions = self.policy.sample_actions(batch, steps, generator=self._generator)
        return self.preprocessor.normalizer.unnormalize_action(
            actions[0].float().cpu().numpy(), robot
        )
