"""The candidates each sample's own future is scored against: sample ids, the masks of itself
and its episode neighbours, in-batch futures from every rank and the target queue's random and
hard draws (PTR_SPEC.md, the posterior's denominator)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ptr_core import batch as K
from ptr_core.weighting.ptr.config import PTRConfig
from ptr_core.weighting.ptr.distributed import _gather, _world
from ptr_core.weighting.ptr.queue import TargetQueue
from ptr_core.weighting.ptr.scorer import future_logits


def _ids(batch: dict[str, Tensor], n: int, device: torch.device) -> Tensor:
    """``[n, 6]`` long: robot, task, dataset, source, episode, frame (−1 where absent)."""
    cols = []
    for key in (K.ROBOT_ID, K.TASK_ID, K.DATASET_ID, K.SOURCE_ID, K.EPISODE_ID, K.FRAME_INDEX):
        value = batch.get(key)
        if value is None:
            cols.append(torch.full((n,), -1, dtype=torch.long, device=device))
        else:
            cols.append(value.reshape(n).to(device=device, dtype=torch.long))
    return torch.stack(cols, dim=1)


def _future_valid(batch: dict[str, Tensor], n: int, device: torch.device) -> Tensor:
    value = batch.get(K.FUTURE_VALID)
    if value is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    return value.reshape(n).to(device=device, dtype=torch.bool)


def _current_state(batch: dict[str, Tensor], n: int, device: torch.device) -> Tensor:
    """The latest normalized observed state ``[n, Ds]`` (zeros ``[n, 1]`` for image-only)."""
    state = batch.get(K.OBS_STATE)
    if state is None:
        return torch.zeros(n, 1, device=device)
    if state.dim() == 3:
        state = state[:, -1]
    return state.reshape(n, -1).to(device=device, dtype=torch.float32)


def _self_and_episode_mask(
    own: Tensor, n_global: int, episode: Tensor, frame: Tensor, g_episode: Tensor,
    g_frame: Tensor, window: int | None,
) -> Tensor:
    """``[B, G]`` True where a candidate is the query itself or (optionally) its near frames."""
    cols = torch.arange(n_global, device=own.device)
    masked = cols[None, :] == own[:, None]
    if window is not None:
        same = (episode[:, None] == g_episode[None, :]) & (episode[:, None] >= 0)
        near = (frame[:, None] - g_frame[None, :]).abs() <= window
        masked = masked | (same & near)
    return masked


def future_candidates(
    c: PTRConfig, queue: TargetQueue | None, u: Tensor, y: Tensor, valid: Tensor,
    batch: dict[str, Tensor], ids: Tensor, g_ids: Tensor, own: Tensor, *, r_hard: float,
    window: int | None, gen: torch.Generator, tau: float,
) -> tuple[Tensor, Tensor]:
    """Future mode: the own future's logit and the negatives' (in-batch over every rank,
    then the queue's random and hard draws)."""
    world, rank = _world()
    n = u.shape[0]
    y_all = _gather(y)
    logits = future_logits(u, y_all, tau, c.logit_clamp)  # [B, G]
    pos = logits.gather(1, own[:, None])[:, 0]
    masked = _self_and_episode_mask(own, n * world, ids[:, 4], ids[:, 5], g_ids[:, 4],
                                    g_ids[:, 5], window)
    g_valid = _gather(valid[:, None].long())[:, 0] > 0
    negs = logits.masked_fill(masked | ~g_valid[None, :], -math.inf)
    queue_negs = queue_negatives(c, queue, u, batch, ids, r_hard, window, gen, rank, n, tau)
    if queue_negs is not None:
        negs = torch.cat([negs, queue_negs], dim=1)
    return pos, negs


def queue_negatives(
    c: PTRConfig, queue: TargetQueue | None, u: Tensor, batch: dict[str, Tensor], ids: Tensor,
    r_hard: float, window: int | None, gen: torch.Generator, rank: int, n: int, tau: float,
) -> Tensor | None:
    assert queue is not None
    filled = queue.filled()
    if c.queue_draws == 0 or filled == 0:
        return None
    world, _ = _world()
    rand = torch.rand(n * world, filled, generator=gen, device=u.device)
    rand = rand[rank * n:(rank + 1) * n]
    state = _current_state(batch, n, u.device)
    drawn = queue.draw(
        n_draws=c.queue_draws, r_hard=r_hard, hard=c.hard_negatives, state=state,
        robot=ids[:, 0], task=ids[:, 1], episode=ids[:, 4], frame=ids[:, 5], window=window,
        rand=rand,
    )
    if drawn is None:
        return None
    logits = future_logits(u, queue.target[:filled], tau, c.logit_clamp)  # [B, filled]
    picked = logits.gather(1, drawn.index)
    return picked.masked_fill(~drawn.usable, -math.inf)
