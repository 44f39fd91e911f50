"""The transition scorer ``f(h, e)`` and the formulas of PTR (PTR_SPEC.md steps 4-8).

Everything here is a pure function of tensors except ``TransitionScorer``; the weighter composes
them. Shapes: ``B`` local queries, ``N`` candidates, ``D`` target width.

Action mode in matrix form: ``u_ij = W_h LN(h_i) + MLP(e_j) = a_i + b_j`` and ``y_i`` is unit
length, so::

    cos(u_ij, y_i) = (a_i·y_i + b_j·y_i) / sqrt(|a_i|² + |b_j|² + 2 a_i·b_j)

which needs three ``[B, N]`` products and never a ``[B, N, D]`` tensor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    'EPS',
    'Posterior',
    'TransitionScorer',
    'action_logits',
    'future_logits',
    'kl_to_data',
    'normalize',
    'posterior',
    'ptr_score',
    'ptr_weight',
    'rank_loss',
]

EPS = 1e-6


class TransitionScorer(nn.Module):
    """``f(h, e) = W_h·LN(h) + MLP_a(e)`` with ``MLP_a`` = Linear–GELU–Linear, Xavier init.

    Split in two halves so the action score can combine every context with every action in
    matrix form: ``context(h) = W_h·LN(h)`` and ``action(e) = MLP_a(e)``.
    """

    def __init__(self, h_dim: int, e_dim: int, out_dim: int, *, hidden: int = 256) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(h_dim)
        self.w_h = nn.Linear(h_dim, out_dim, bias=False)
        self.mlp_a = nn.Sequential(
            nn.Linear(e_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim)
        )
        for module in (self.w_h, self.mlp_a[0], self.mlp_a[2]):
            assert isinstance(module, nn.Linear)
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def context(self, h: Tensor) -> Tensor:
        out: Tensor = self.w_h(self.norm(h))
        return out

    def action(self, e: Tensor) -> Tensor:
        out: Tensor = self.mlp_a(e)
        return out

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        out: Tensor = self.context(h) + self.action(e)
        return out


def normalize(x: Tensor, eps: float = EPS) -> Tensor:
    """L2-normalize the last dimension; vectors shorter than ``eps`` are divided by ``eps``."""
    norm: Tensor = x.norm(dim=-1, keepdim=True)
    return x / norm.clamp_min(eps)


def future_logits(u: Tensor, targets: Tensor, tau: Tensor | float, clamp: float) -> Tensor:
    """``d_ij = cos(u_i, y_j) / τ`` clamped to ±clamp: ``u [B, D]``, ``targets [N, D]`` (unit)."""
    cos = normalize(u) @ targets.transpose(0, 1)
    return (cos / tau).clamp(-clamp, clamp)


def action_logits(
    a: Tensor, b: Tensor, y: Tensor, tau: Tensor | float, clamp: float
) -> Tensor:
    """``d_ij = cos(a_i + b_j, y_i) / τ`` for ``a [B, D]``, ``b [N, D]``, unit ``y [B, D]``."""
    num = (a * y).sum(-1, keepdim=True) + y @ b.transpose(0, 1)
    sq = (a * a).sum(-1, keepdim=True) + (b * b).sum(-1)[None, :] + 2.0 * (a @ b.transpose(0, 1))
    cos = num / sq.clamp_min(EPS * EPS).sqrt()
    return (cos / tau).clamp(-clamp, clamp)


class Posterior:
    """The identification posterior of each query's own candidate (index 0) among its pool."""

    def __init__(self, pos: Tensor, negs: Tensor) -> None:
        """``pos [B]`` the own logit, ``negs [B, N]`` the negatives' logits, ``-inf`` = masked."""
        logits = torch.cat([pos[:, None], negs], dim=1)
        self.log_p = pos - torch.logsumexp(logits, dim=1)  # log softmax_j(d_ij)[0]
        self.n_candidates = 1 + torch.isfinite(negs).sum(dim=1)  # |Y_i|
        with torch.no_grad():
            has_neg = self.n_candidates > 1
            best_neg = negs.max(dim=1).values if negs.shape[1] else pos.new_full(pos.shape, -1)
            best_neg = torch.where(has_neg, best_neg, pos.new_zeros(()))
            self.correct = (pos > best_neg) | ~has_neg  # argmax is index 0
            self.margin = torch.where(has_neg, pos - best_neg, pos.new_zeros(()))


def posterior(pos: Tensor, negs: Tensor) -> Posterior:
    return Posterior(pos, negs)


def ptr_score(log_p: Tensor, n_candidates: Tensor) -> Tensor:
    """Eq. 14: ``T = log p + log |Y|`` (0: no better than uniform; > 0: identifiable)."""
    return log_p + n_candidates.to(log_p.dtype).log()


def ptr_weight(
    score: Tensor, beta: Tensor | float, w_min: float, w_max: float, alpha: float
) -> Tensor:
    """Eq. 21: ``w = 1 + α (clip(exp(T / β), w_min, w_max) − 1)``.

    Computed in log space so a large ``T / β`` clips instead of overflowing.
    """
    log_lo = math.log(w_min) if w_min > 0 else -math.inf
    log_w = (score / beta).clamp(log_lo, math.log(w_max))
    return 1.0 + alpha * (log_w.exp() - 1.0)


def rank_loss(d_pos: Tensor, d_neg: Tensor) -> Tensor:
    """Per-sample ``−log σ(d⁺ − d⁻)`` (``[B]``)."""
    return F.softplus(d_neg - d_pos)


def kl_to_data(weights: Tensor, probs: Tensor | None = None) -> Tensor:
    """``KL(q‖p)`` of ``q ∝ p·w`` from ``p`` (uniform when ``probs`` is None)."""
    w = weights.double()
    p = torch.full_like(w, 1.0 / w.numel()) if probs is None else probs.double() / probs.sum()
    q = p * w / (p * w).sum()
    keep = q > 0
    return (q[keep] * (q[keep] / p[keep]).log()).sum()
