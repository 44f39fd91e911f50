"""The adaptive controller of τ, β and the hard-negative share r_hard (PTR_SPEC.md step 9).

EMAs (decay 0.98) of identification accuracy, margin, mean T and valid ratio are updated every
step; every ``controller_every`` steps the rules run:

- ``acc < acc_low``: τ ×tau_up, β ×beta_up (identification too hard: soften);
- ``acc > acc_high and margin > margin_high``: τ ×tau_down, β ×beta_down (sharpen);
- τ, β clipped to their ranges; ``r_hard = r_hard_max · clip((acc − 0.10) / 0.40, 0, 1)``
  (at least ``r_hard_min``; 0 when ``hard_negatives: none``).

All state is in buffers (saved in checkpoints, restored on resume).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ptr_core.weighting.ptr.config import PTRConfig

__all__ = ['AdaptiveController']


class AdaptiveController(nn.Module):
    tau: Tensor
    beta: Tensor
    r_hard: Tensor
    ema_acc: Tensor
    ema_margin: Tensor
    ema_score: Tensor
    ema_valid: Tensor
    updates: Tensor

    def __init__(self, config: PTRConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer('tau', torch.tensor(float(config.tau), dtype=torch.float64))
        self.register_buffer('beta', torch.tensor(float(config.beta), dtype=torch.float64))
        start = 0.0 if config.hard_negatives == 'none' else config.r_hard_min
        self.register_buffer('r_hard', torch.tensor(start, dtype=torch.float64))
        for name in ('ema_acc', 'ema_margin', 'ema_score', 'ema_valid'):
            self.register_buffer(name, torch.zeros((), dtype=torch.float64))
        self.register_buffer('updates', torch.zeros((), dtype=torch.long))  # EMA updates so far

    @torch.no_grad()
    def observe(self, acc: float, margin: float, mean_score: float, valid_ratio: float) -> None:
        """Fold one step's statistics into the EMAs (the first step initialises them)."""
        decay = self.config.controller_ema if int(self.updates) > 0 else 0.0
        for buf, value in (
            (self.ema_acc, acc), (self.ema_margin, margin), (self.ema_score, mean_score),
            (self.ema_valid, valid_ratio),
        ):
            buf.mul_(decay).add_((1.0 - decay) * float(value))
        self.updates.add_(1)

    @torch.no_grad()
    def adapt(self) -> None:
        """Apply the rules once (the caller runs it every ``controller_every`` steps)."""
        c = self.config
        acc, margin = float(self.ema_acc), float(self.ema_margin)
        tau, beta = float(self.tau), float(self.beta)
        if acc < c.acc_low:
            tau, beta = tau * c.tau_up, beta * c.beta_up
        elif acc > c.acc_high and margin > c.margin_high:
            tau, beta = tau * c.tau_down, beta * c.beta_down
        self.tau.fill_(min(max(tau, c.tau_min), c.tau_max))
        self.beta.fill_(min(max(beta, c.beta_min), c.beta_max))
        share = min(max((acc - 0.10) / 0.40, 0.0), 1.0)
        r_hard = max(c.r_hard_min, c.r_hard_max * share)
        self.r_hard.fill_(0.0 if c.hard_negatives == 'none' else r_hard)

    def state(self) -> dict[str, float]:
        return {
            'tau': float(self.tau), 'beta': float(self.beta), 'r_hard': float(self.r_hard),
            'ema_acc': float(self.ema_acc), 'ema_margin': float(self.ema_margin),
            'ema_T': float(self.ema_score), 'ema_valid': float(self.ema_valid),
        }
