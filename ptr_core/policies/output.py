"""What a policy's training forward returns: the per-sample loss and what the weighters read."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ['PolicyOutput']


@dataclass
class PolicyOutput:
    """What the policy's training forward returns."""

    loss: Tensor  # [B] per-sample action loss, unreduced, masked by robot dims and padding
    h: Tensor  # [B, Dh] pooled context of the backbone (keeps its graph)
    e: Tensor  # [B, De] pooled action summary the head computes (keeps its graph)
