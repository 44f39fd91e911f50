"""The target pass: ``g(o_{t+Δ})`` and, for ``target: delta``, ``g(o_t)`` of the EMA encoder.

With cameras this pass is the online weighter's main cost: a no-grad trunk pass per camera over
the future frame and, for ``delta``, over the current frame (the last observation step), about a
third of the work of the trunk's forward and backward in the policy step. Two calls, one per
frame: one call over ``[future; current]`` (``2B`` frames) measured 1.35-1.5x slower on a CPU
(docs/results/2026-12-07-weighter-image-step.md).

``target_size`` (opt-in; default 0 = full size, the encoder's own two calls unchanged): the
frames are average-pooled by the largest whole factor ``k`` that keeps their shorter side at
least ``target_size`` (32: 96 px frames → 32, 64 → 32, 84 → 42, 224 → 32), so the trunk's work
falls by ``k²``; ``g`` reads a coarser view of the same scene with the same weights, the delta
between two frames pooled alike. It costs ranking: at 32 px on 64 px Meta-World frames the score
stopped telling shuffled labels from the expert's (the same results file), so it is not the
default. State-only batches (no image keys) are never touched.

Shapes: ``future.images.<role> [B, C, H, W]``, ``obs.images.<role> [B, To, C, H, W]`` →
``[B, D]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['FUTURE_PREFIX', 'OBS_PREFIX', 'pool_factor', 'pool_frames', 'target_pass']

FUTURE_PREFIX = 'future.'
OBS_PREFIX = 'obs.'


def target_pass(
    encoder: nn.Module, batch: dict[str, Tensor], *, target: str, size: int
) -> Tensor:
    """The raw target feature ``[B, D]``: ``g(o_{t+Δ})``, minus ``g(o_t)`` for ``delta``
    (``residual`` subtracts its prediction later, in the weighter)."""
    feature = _feature(encoder, batch, FUTURE_PREFIX, size)
    if target == 'delta':
        feature = feature - _feature(encoder, batch, OBS_PREFIX, size)
    return feature


def _feature(encoder: nn.Module, batch: dict[str, Tensor], prefix: str, size: int) -> Tensor:
    """``encoder.target_feature`` of ``prefix``; with ``size`` its camera frames pooled first."""
    if size > 0:
        images = f'{prefix}images.'
        batch = {k: pool_frames(_current_frame(v), size) if k.startswith(images) else v
                 for k, v in batch.items()}
    out: Tensor = encoder.target_feature(batch, prefix)  # type: ignore[operator]
    return out


def pool_factor(height: int, width: int, size: int) -> int:
    """The largest whole ``k`` with ``min(height, width) // k >= size`` (1 when ``size`` is 0)."""
    return max(1, min(height, width) // size) if size > 0 else 1


def pool_frames(frames: Tensor, size: int) -> Tensor:
    """``[N, C, H, W]`` average-pooled by ``pool_factor`` (a remainder row/column is dropped)."""
    k = pool_factor(frames.shape[-2], frames.shape[-1], size)
    return frames if k == 1 else F.avg_pool2d(frames, k)


def _current_frame(obs: Tensor) -> Tensor:
    """``o_t``: the last step of ``[B, To, C, H, W]`` (a ``[B, C, H, W]`` frame as is)."""
    return obs[:, -1] if obs.dim() == 5 else obs
