"""The ``SampleWeighter`` contract between the trainer and a per-sample weighting method.

Per step the trainer does::

    out = policy.forward_train(batch)                  # PolicyOutput: loss [B], h, e
    wout = weighter(batch, out, step)                  # WeightOutput: weights [B] (no grad)
    loss_act = weighted_mean(out.loss, wout.weights)   # Σ w·l / Σ w (Σw all-reduced under DDP)
    loss = loss_act + wout.aux_loss                    # one backward, one optimizer
    ... optimizer step ...
    weighter.after_step(batch, out)                    # EMA targets, queue push, controller

A weighter is an ``nn.Module``: its parameters join the optimizer and its buffers (controller
state, queue) are saved in checkpoints, so resume restores them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ptr_core.configuration import to_dict
from ptr_core.policies.output import PolicyOutput  # the policy package owns it; re-exported

__all__ = ['PolicyOutput', 'SampleWeighter', 'UniformWeighter', 'WeightOutput', 'weighted_mean']


@dataclass
class WeightOutput:
    weights: Tensor  # [B], detached, >= 0
    aux_loss: Tensor  # scalar; 0 for weighters without parameters
    metrics: dict[str, float] = field(default_factory=dict)


class SampleWeighter(nn.Module):
    """Base class. Subclasses implement ``forward``; the rest has safe defaults."""

    name = 'base'

    def bind(self, policy: nn.Module) -> None:
        """Called once before training with the (unwrapped) policy, e.g. to copy its encoder."""

    def set_group_names(
        self, *, robots: Sequence[str] = (), sources: Sequence[str] = ()
    ) -> None:
        """Called once before training with the robots' and source tags' names (for
        per-group diagnostics); ignored by default."""

    def resolved_options(self) -> dict[str, Any]:
        """Every option's effective value (defaults filled in): what checkpoints save as
        ``weighter.options``. The dataclass a weighter keeps in ``config`` or ``options``;
        ``{}`` for a weighter without options."""
        for attr in ('config', 'options'):
            value = getattr(self, attr, None)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return to_dict(value)
        return {}

    def forward(  # type: ignore[override]
        self, batch: dict[str, Tensor], out: PolicyOutput, step: int
    ) -> WeightOutput:
        raise NotImplementedError

    @torch.no_grad()
    def after_step(self, batch: dict[str, Tensor], out: PolicyOutput, step: int) -> None:
        """Called after the optimizer step (EMA target update, queue push, controller)."""


class UniformWeighter(SampleWeighter):
    """Every sample weighs 1: the plain mean of the per-sample loss."""

    name = 'uniform'

    def forward(  # type: ignore[override]
        self, batch: dict[str, Tensor], out: PolicyOutput, step: int
    ) -> WeightOutput:
        ones = torch.ones_like(out.loss).detach()
        return WeightOutput(weights=ones, aux_loss=out.loss.new_zeros(()))


def weighted_mean(
    loss: Tensor, weights: Tensor, *, group: object | None = None, distributed: bool = False
) -> Tensor:
    """Σ w·l / Σ w with the denominator summed over every rank when ``distributed``.

    Under DDP each rank returns ``Σ_local w·l / Σ_global w · world_size`` so that DDP's gradient
    averaging yields exactly the single-process gradient on the global batch.
    """
    weights = weights.detach().to(loss.dtype)
    denom = weights.sum()
    scale = 1.0
    if distributed:
        import torch.distributed as dist

        denom = denom.clone()
        dist.all_reduce(denom, group=group)  # type: ignore[arg-type]
        scale = float(dist.get_world_size(group=group))  # type: ignore[arg-type]
    return (weights * loss).sum() * scale / denom.clamp_min(1e-12)
