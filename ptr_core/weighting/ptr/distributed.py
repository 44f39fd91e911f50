"""The DDP plumbing of the PTR weighter: world size and rank, all-gathers (with and without
gradient) over one process group per device kind; a single process is a world of one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0 (no gradient); ``x`` itself on one rank."""
    world, _ = _world()
    if world == 1:
        return x
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.detach().contiguous(), group=_group())
    return torch.cat(parts, dim=0)


def _gather_with_grad(x: Tensor) -> Tensor:
    """Like ``_gather`` but gradients flow back to every rank's rows (summed over ranks)."""
    world, _ = _world()
    if world == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    parts: Sequence[Tensor] = all_gather(  # type: ignore[no-untyped-call]
        x.contiguous(), group=_group())
    return torch.cat(list(parts), dim=0)


_GROUPS: dict[int, Any] = {}


def _group() -> Any:
    """The weighter's own process group (one per default group, made on first use by every rank).

    ``_gather_with_grad``'s backward runs a collective inside autograd, while DDP all-reduces
    gradient buckets from its hooks on the default group; the order of the two differs between
    ranks with thread timing, and on one shared group that deadlocks (seen: both ranks spinning in
    backward on a loaded machine). On a group of their own they never meet.
    """
    import torch.distributed as dist

    key = id(dist.group.WORLD)
    if key not in _GROUPS:
        _GROUPS[key] = dist.new_group(ranks=list(range(dist.get_world_size())))
    return _GROUPS[key]
