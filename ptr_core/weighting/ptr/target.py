"""The target pass: ``g(o_{t+Δ})`` and, for ``target: delta``, ``g(o_t)`` of the EMA encoder.

With cameras this pass is the online weighter's main cost: a no-grad trunk pass per camera over
the future frame and, for ``delta``, over the current frame (the last observation step): about
a third of the trunk's forward and backward in the policy step. What bears on that cost is here:

- one trunk call per camera over ``[future; current]`` (``2B`` frames) instead of two calls
  (half the kernel launches; on a CPU the same arithmetic, so the same time);
- ``target_size`` (opt-in; default 0 = full size): the frames are average-pooled by the largest
  whole factor ``k`` that keeps their shorter side at least ``target_size`` (32: 96 px frames
  → 32, 64 → 32, 84 → 42, 224 → 32). The trunk's work falls by ``k²``; ``g`` reads a coarser
  view of the same scene with the same weights, the delta between two frames pooled alike. It
  costs ranking: at 32 px on 64 px Meta-World frames the score stopped telling shuffled labels
  from the expert's (docs/results/2026-12-07-weighter-image-step.md), so it is not the default.

State-only batches (no image keys) take the encoder's two state passes exactly as before, so a
state policy's weights do not depend on ``target_size``.

Shapes: ``future.images.<role> [B, C, H, W]``, ``obs.images.<role> [B, To, C, H, W]`` →
``[B, D]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ptr_core import batch as K

__all__ = ['FUTURE_PREFIX', 'OBS_PREFIX', 'pool_factor', 'pool_frames', 'target_pass']

FUTURE_PREFIX = 'future.'
OBS_PREFIX = 'obs.'
_JOINT_PREFIX = 'ptr.target.'  # the private view handed to ``target_feature``


def target_pass(
    encoder: nn.Module, batch: dict[str, Tensor], *, target: str, size: int
) -> Tensor:
    """The raw target feature ``[B, D]``: ``g(o_{t+Δ})``, minus ``g(o_t)`` for ``delta``
    (``residual`` subtracts its prediction later, in the weighter)."""
    delta = target == 'delta'
    roles = [k[len(K.FUTURE_IMAGE_PREFIX):] for k in batch if k.startswith(K.FUTURE_IMAGE_PREFIX)]
    if not roles:  # state only: the encoded state, the two passes kept as they were
        feature: Tensor = encoder.target_feature(batch, FUTURE_PREFIX)  # type: ignore[operator]
        if delta:
            current: Tensor = encoder.target_feature(batch, OBS_PREFIX)  # type: ignore[operator]
            feature = feature - current
        return feature
    mask = batch[K.OBS_CAMERA_MASK]
    view = {K.OBS_CAMERA_MASK: torch.cat([mask, mask]) if delta else mask}
    for role in roles:
        frames = batch[f'{K.FUTURE_IMAGE_PREFIX}{role}']
        if delta:
            frames = torch.cat([frames, _current_frame(batch[K.obs_image_key(role)])])
        view[f'{_JOINT_PREFIX}images.{role}'] = pool_frames(frames, size)
    joint: Tensor = encoder.target_feature(view, _JOINT_PREFIX)  # type: ignore[operator]
    if not delta:
        return joint
    future, now = joint.chunk(2)
    return future - now


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
