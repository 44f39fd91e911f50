"""The FIFO queue of past targets and its draws of negatives, hard ones included (step 3, 10).

Every field is a fixed-size registered buffer, so the queue is saved in checkpoints and restored
bit for bit on resume. Under DDP every rank pushes the same gathered targets, so the queues of all
ranks stay identical (and DDP's buffer broadcast changes nothing).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ['QueueDraw', 'TargetQueue']


class QueueDraw:
    """The indices a query drew from the queue and which of them are usable."""

    def __init__(self, index: Tensor, usable: Tensor, n_hard: int) -> None:
        self.index = index  # long [B, K] into the queue
        self.usable = usable  # bool [B, K]; unusable draws are masked out of the pool
        self.n_hard = n_hard  # the first n_hard columns are the hard draws


class TargetQueue(nn.Module):
    """``size`` past unit targets ``[size, D]`` with their state, robot, task, episode, frame."""

    target: Tensor
    state: Tensor
    robot: Tensor
    task: Tensor
    episode: Tensor
    frame: Tensor
    head: Tensor
    count: Tensor

    def __init__(self, size: int, target_dim: int, state_dim: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer('target', torch.zeros(size, target_dim))
        self.register_buffer('state', torch.zeros(size, max(state_dim, 1)))
        for name in ('robot', 'task', 'episode', 'frame'):
            self.register_buffer(name, torch.full((size,), -1, dtype=torch.long))
        self.register_buffer('head', torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer('count', torch.zeros((), dtype=torch.long))  # filled slots

    def filled(self) -> int:
        return int(self.count.item())

    @torch.no_grad()
    def push(
        self, target: Tensor, state: Tensor, robot: Tensor, task: Tensor, episode: Tensor,
        frame: Tensor,
    ) -> None:
        """Append rows (oldest overwritten first); rows beyond ``size`` keep only the newest."""
        n = target.shape[0]
        if n == 0 or self.size == 0:
            return
        if n > self.size:
            target, state, robot, task, episode, frame = (
                x[-self.size:] for x in (target, state, robot, task, episode, frame)
            )
            n = self.size
        slots = (self.head + torch.arange(n, device=self.head.device)) % self.size
        self.target[slots] = target.to(self.target.dtype)
        self.state[slots] = _fit_width(state.to(self.state.dtype), self.state.shape[1])
        self.robot[slots] = robot.long()
        self.task[slots] = task.long()
        self.episode[slots] = episode.long()
        self.frame[slots] = frame.long()
        self.head.copy_((self.head + n) % self.size)
        self.count.copy_((self.count + n).clamp_max(self.size))

    @torch.no_grad()
    def draw(
        self, *, n_draws: int, r_hard: float, hard: str, state: Tensor, robot: Tensor,
        task: Tensor, episode: Tensor, frame: Tensor, window: int | None, rand: Tensor,
    ) -> QueueDraw | None:
        """Up to ``n_draws`` entries per query: ``round(r_hard·K)`` hard, the rest at random.

        ``hard='nearest_state'`` takes the entries whose stored (normalized) state is nearest to
        the query's; ``'task_robot'`` prefers entries of the same task or robot, nearest state
        first, and falls back to the nearest states. ``window`` (not None) excludes entries of
        the query's episode within ±window frames. ``rand [B, filled]`` are uniform scores that
        pick the random draws (the caller seeds them so every rank draws as one process would).
        """
        n = self.filled()
        k = min(n_draws, n)
        if k == 0:
            return None
        excluded = torch.zeros(state.shape[0], n, dtype=torch.bool, device=state.device)
        if window is not None:
            same = episode[:, None] == self.episode[None, :n]
            near = (frame[:, None] - self.frame[None, :n]).abs() <= window
            excluded = same & near
        n_hard = round(r_hard * k) if hard != 'none' else 0
        picks: list[Tensor] = []
        usable: list[Tensor] = []
        taken = excluded.clone()
        if n_hard > 0:
            dist = torch.cdist(
                _fit_width(state.float(), self.state.shape[1]), self.state[:n].float()
            )
            if hard == 'task_robot':
                match = (task[:, None] == self.task[None, :n]) | (
                    robot[:, None] == self.robot[None, :n]
                )
                dist = dist + (~match).float() * (dist.max() + 1.0)
            dist = dist.masked_fill(excluded, float('inf'))
            near_dist, hard_idx = dist.topk(n_hard, dim=1, largest=False)
            picks.append(hard_idx)
            usable.append(torch.isfinite(near_dist))
            taken = taken.scatter(1, hard_idx, True)
        n_rand = k - n_hard
        if n_rand > 0:
            scores = rand[:, :n].masked_fill(taken, -1.0)
            top, rand_idx = scores.topk(n_rand, dim=1)
            picks.append(rand_idx)
            usable.append(top >= 0)
        return QueueDraw(torch.cat(picks, dim=1), torch.cat(usable, dim=1), n_hard)


def _fit_width(x: Tensor, width: int) -> Tensor:
    """Pad with zeros or cut the last dimension to ``width`` (states of padded robots)."""
    d = x.shape[-1]
    if d == width:
        return x
    if d > width:
        return x[..., :width]
    return torch.nn.functional.pad(x, (0, width - d))
