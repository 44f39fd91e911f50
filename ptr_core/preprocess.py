"""The one observation preprocessing path, shared by the training loader and the policy node.

``image (uint8 / uint16 depth) → resize to the layout's size → float [0, 1] → [C, H, W]`` and
``state → per-robot normalization → zero-pad to the unified width``. The loader calls
``observation_sample`` for every window; ``ptr_ros`` calls ``observation_batch`` (the same code
with a batch axis of 1) through ``PolicyRunner``, so a frame becomes the same tensor in both.

Normalization modes (``Normalizer.mode``), per robot and per dimension, from the manifest stats:

- ``minmax_p``: the [p01, p99] range maps to [-1, 1] (robust to outliers; the default);
- ``minmax``: the [min, max] range maps to [-1, 1];
- ``meanstd``: (x - mean) / std.

A dimension with a (near) zero range is only centred. The normalizer is saved in every checkpoint
(``to_json``) and restored from it, never recomputed at serving time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from bag_tools.dataset import FeatureStats, RobotEntry
from bag_tools.observation import resize_image
from ptr_core import batch as K
from ptr_core.errors import PtrError
from ptr_core.layout import UnifiedLayout

__all__ = [
    'Normalizer',
    'Preprocessor',
    'finish_images',
    'image_to_tensor',
    'merge_stats',
    'observation_batch',
]

_EPS = 1e-6


def merge_stats(parts: Sequence[FeatureStats]) -> FeatureStats:
    """Combine one feature's statistics from several datasets (pooled mean/std, outer range).

    Percentiles cannot be merged exactly; the count-weighted mean of each dataset's p01/p99 is
    used, which is exact for one dataset and close for similar ones.
    """
    if len(parts) == 1:
        return parts[0]
    counts = np.array([p['count'] for p in parts], dtype=np.float64)
    w = counts / counts.sum()
    mean = np.stack([np.asarray(p['mean']) for p in parts])
    std = np.stack([np.asarray(p['std']) for p in parts])
    pooled_mean = (w[:, None] * mean).sum(0)
    pooled_var = (w[:, None] * (std**2 + (mean - pooled_mean) ** 2)).sum(0)
    return FeatureStats(
        count=int(counts.sum()),
        min=np.min([p['min'] for p in parts], axis=0).tolist(),
        max=np.max([p['max'] for p in parts], axis=0).tolist(),
        mean=pooled_mean.tolist(),
        std=np.sqrt(pooled_var).tolist(),
        p01=(w[:, None] * np.stack([np.asarray(p['p01']) for p in parts])).sum(0).tolist(),
        p99=(w[:, None] * np.stack([np.asarray(p['p99']) for p in parts])).sum(0).tolist(),
    )


def _center_scale(
    stats: FeatureStats | None, mode: str, dim: int
) -> tuple[list[float], list[float]]:
    if stats is None:  # no valid frame: identity
        return [0.0] * dim, [1.0] * dim
    if mode == 'meanstd':
        center = np.asarray(stats['mean'], np.float64)
        scale = np.asarray(stats['std'], np.float64)
    else:
        robust = mode == 'minmax_p'
        lo = np.asarray(stats['p01'] if robust else stats['min'], np.float64)
        hi = np.asarray(stats['p99'] if robust else stats['max'], np.float64)
        center, scale = (hi + lo) / 2.0, (hi - lo) / 2.0
    scale = np.where(scale < _EPS, 1.0, scale)
    return center.tolist(), scale.tolist()


class Normalizer:
    """Per-robot affine normalization of state and action: ``x_n = (x - center) / scale``."""

    def __init__(
        self,
        mode: str,
        state: Mapping[str, tuple[Sequence[float], Sequence[float]]],
        action: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    ) -> None:
        self.mode = mode
        self._state = {r: (np.asarray(c, np.float32), np.asarray(s, np.float32))
                       for r, (c, s) in state.items()}
        self._action = {r: (np.asarray(c, np.float32), np.asarray(s, np.float32))
                        for r, (c, s) in action.items()}

    @classmethod
    def from_stats(
        cls,
        mode: str,
        stats: Mapping[str, Mapping[str, FeatureStats]],
        robots: Mapping[str, RobotEntry],
    ) -> Normalizer:
        """From manifest statistics (robot -> feature -> stats); robots fixes the widths."""
        state, action = {}, {}
        for robot, entry in robots.items():
            feats = stats.get(robot, {})
            state[robot] = _center_scale(feats.get('state'), mode, len(entry['state_names']))
            action[robot] = _center_scale(feats.get('action'), mode, len(entry['action_names']))
        return cls(mode, state, action)

    def _get(self, table: dict[str, tuple[Any, Any]], robot: str, what: str) -> tuple[Any, Any]:
        try:
            return table[robot]
        except KeyError:
            msg = f'no {what} normalization for robot {robot!r} (known: {sorted(table)})'
            raise PtrError(msg) from None

    def state_dim(self, robot: str) -> int:
        return len(self._get(self._state, robot, 'state')[0])

    def action_dim(self, robot: str) -> int:
        return len(self._get(self._action, robot, 'action')[0])

    def _normalize(
        self, table: dict[str, tuple[Any, Any]], x: npt.ArrayLike, robot: str, feature: str
    ) -> npt.NDArray[np.float32]:
        center, scale = self._get(table, robot, feature)
        arr = np.asarray(x, np.float32)
        if arr.shape[-1] != len(center):
            msg = f'robot {robot!r}: {feature} has {arr.shape[-1]} values, expected {len(center)}'
            raise PtrError(msg)
        out: npt.NDArray[np.float32] = (arr - center) / scale
        return out

    def normalize_state(self, x: npt.ArrayLike, robot: str) -> npt.NDArray[np.float32]:
        return self._normalize(self._state, x, robot, 'state')

    def normalize_action(self, x: npt.ArrayLike, robot: str) -> npt.NDArray[np.float32]:
        return self._normalize(self._action, x, robot, 'action')

    def unnormalize_action(self, x: npt.ArrayLike, robot: str) -> npt.NDArray[np.float32]:
        """Physical units from normalized (padded ``[..., Da]`` or robot-width) actions."""
        center, scale = self._get(self._action, robot, 'action')
        arr = np.asarray(x, np.float32)[..., : len(center)]
        out: npt.NDArray[np.float32] = arr * scale + center
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            'mode': self.mode,
            'state': {r: {'center': c.tolist(), 'scale': s.tolist()}
                      for r, (c, s) in self._state.items()},
            'action': {r: {'center': c.tolist(), 'scale': s.tolist()}
                       for r, (c, s) in self._action.items()},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Normalizer:
        return cls(
            str(obj['mode']),
            {r: (v['center'], v['scale']) for r, v in obj['state'].items()},
            {r: (v['center'], v['scale']) for r, v in obj['action'].items()},
        )


def image_to_tensor(
    frames: npt.NDArray[Any],
    size: tuple[int, int],
    *,
    depth_max: float,
    role: str = '',
    defer_uint8: bool = False,
) -> Tensor:
    """``[T, H, W, C]`` uint8 (or uint16 depth, or float in [0, 1]) → float ``[T, C, H', W']``.

    Frames of another size are resized to ``size`` by ``bag_tools.observation.resize_image``,
    the rule ingestion uses (area for color, nearest for uint16 depth).
    """
    arr = np.asarray(frames)
    if arr.ndim == 3:  # [T, H, W] single channel
        arr = arr[..., None]
    if arr.ndim != 4:
        msg = f'camera {role!r}: expected frames [T, H, W, C], got shape {arr.shape}'
        raise PtrError(msg)
    h, w = size
    if arr.shape[1:3] != (h, w):
        depth = arr.dtype == np.uint16
        arr = np.stack([resize_image(f, (h, w), depth=depth) for f in arr])
    if arr.dtype == np.uint8 and defer_uint8:  # scaled later by finish_images (on the device)
        out = torch.from_numpy(np.array(arr))
    elif arr.dtype == np.uint8:
        out = torch.from_numpy(arr.astype(np.float32)).div_(255.0)
    elif arr.dtype == np.uint16:
        out = torch.from_numpy(arr.astype(np.float32)).div_(depth_max).clamp_(0.0, 1.0)
    elif np.issubdtype(arr.dtype, np.floating):
        out = torch.from_numpy(np.array(arr, dtype=np.float32))
    else:
        msg = f'camera {role!r}: unsupported image dtype {arr.dtype}'
        raise PtrError(msg)
    return out.permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Preprocessor:
    """Everything that turns raw frames into batch tensors; saved in every checkpoint."""

    layout: UnifiedLayout
    normalizer: Normalizer
    channels: dict[str, int]  # camera role -> C (for zero images of roles a robot lacks)
    obs_horizon: int
    depth_max: float = 10000.0

    @classmethod
    def build(
        cls,
        layout: UnifiedLayout,
        normalizer: Normalizer,
        robots: Mapping[str, RobotEntry],
        *,
        obs_horizon: int,
        depth_max: float = 10000.0,
    ) -> Preprocessor:
        channels: dict[str, int] = {}
        for entry in robots.values():
            for role in entry['camera_roles']:
                channels.setdefault(role, int(entry['image_channels'].get(role, 3)))
        return cls(layout, normalizer, channels, obs_horizon, depth_max)

    def to_json(self) -> dict[str, Any]:
        return {
            'layout': self.layout.to_json(),
            'normalizer': self.normalizer.to_json(),
            'channels': dict(self.channels),
            'obs_horizon': self.obs_horizon,
            'depth_max': self.depth_max,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Preprocessor:
        return cls(
            UnifiedLayout.from_json(obj['layout']),
            Normalizer.from_json(obj['normalizer']),
            {str(k): int(v) for k, v in obj['channels'].items()},
            int(obj['obs_horizon']),
            float(obj['depth_max']),
        )

    def _robot(self, robot: str) -> int:
        if robot not in self.layout.robots:
            msg = f'unknown robot {robot!r}; this policy knows {list(self.layout.robots)}'
            raise PtrError(msg)
        return self.layout.robot_index(robot)

    def _pad_state(self, x: npt.NDArray[np.float32]) -> Tensor:
        out = np.zeros((*x.shape[:-1], self.layout.state_dim), np.float32)
        out[..., : x.shape[-1]] = x
        return torch.from_numpy(out)

    def _images(
        self,
        images: Mapping[str, npt.NDArray[Any]],
        robot: str,
        steps: int | None,
        defer_uint8: bool = False,
    ) -> dict[str, Tensor]:
        """Per layout role: ``[T, C, H, W]`` (or ``[C, H, W]`` when ``steps`` is None)."""
        out: dict[str, Tensor] = {}
        mask = self.layout.camera_mask[robot]
        h, w = self.layout.image_size
        for i, role in enumerate(self.layout.camera_roles):
            t = 1 if steps is None else steps
            if not mask[i]:
                frames = torch.zeros(t, self.channels.get(role, 3), h, w,
                                     dtype=torch.uint8 if defer_uint8 else torch.float32)
            elif role not in images:
                msg = f'robot {robot!r}: no frames for camera role {role!r}'
                raise PtrError(msg)
            else:
                raw = np.asarray(images[role])
                if steps is None:
                    raw = raw[None]
                frames = image_to_tensor(raw, (h, w), depth_max=self.depth_max, role=role,
                                         defer_uint8=defer_uint8)
                if len(frames) < t:  # history shorter than To: repeat the first frame
                    frames = torch.cat([frames[:1].expand(t - len(frames), -1, -1, -1), frames])
                frames = frames[len(frames) - t:]
            out[role] = frames[0] if steps is None else frames
        return out

    def observation(
        self,
        state_history: npt.ArrayLike,
        images: Mapping[str, npt.NDArray[Any]],
        robot: str,
        *,
        defer_uint8: bool = False,
    ) -> dict[str, Tensor]:
        """One sample (no batch axis): ``obs.state [To, Ds]``, ``obs.images.<role> [To, C, H, W]``,
        camera/state masks and the robot id. A history shorter than ``To`` is padded by
        repeating its first frame (as the loader does at an episode's start).

        ``defer_uint8`` (the training loader): uint8 frames stay uint8 so workers ship 4x fewer
        bytes; ``finish_images`` then applies the identical ``/ 255`` on the device."""
        idx = self._robot(robot)
        state = np.asarray(state_history, np.float32)
        if state.ndim != 2 or len(state) == 0:
            msg = f'robot {robot!r}: state history must be [T, Ds] with T >= 1, got {state.shape}'
            raise PtrError(msg)
        to = self.obs_horizon
        if len(state) < to:
            state = np.concatenate([np.repeat(state[:1], to - len(state), 0), state])
        state = state[len(state) - to:]
        sample: dict[str, Tensor] = {
            K.OBS_STATE: self._pad_state(self.normalizer.normalize_state(state, robot)),
            K.OBS_CAMERA_MASK: torch.from_numpy(self.layout.camera_mask[robot].copy()),
            K.STATE_MASK: torch.from_numpy(self.layout.state_mask[robot].copy()),
            K.ROBOT_ID: torch.tensor(idx, dtype=torch.long),
        }
        for role, frames in self._images(images, robot, to, defer_uint8).items():
            sample[K.obs_image_key(role)] = frames
        return sample

    def future(
        self,
        state: npt.ArrayLike,
        images: Mapping[str, npt.NDArray[Any]],
        robot: str,
        *,
        defer_uint8: bool = False,
    ) -> dict[str, Tensor]:
        """The post-action observation at ``t + Δ`` (no batch axis, no time axis)."""
        self._robot(robot)
        sample = {K.FUTURE_STATE: self._pad_state(self.normalizer.normalize_state(state, robot))}
        for role, frame in self._images(images, robot, None, defer_uint8).items():
            sample[K.future_image_key(role)] = frame
        return sample

    def action(self, action: npt.ArrayLike, robot: str) -> Tensor:
        """Normalized, zero-padded action ``[..., Da]``."""
        x = self.normalizer.normalize_action(action, robot)
        out = np.zeros((*x.shape[:-1], self.layout.action_dim), np.float32)
        out[..., : x.shape[-1]] = x
        return torch.from_numpy(out)


def finish_images(batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Scale image tensors a loader left as uint8 to float [0, 1] (``defer_uint8``); other
    tensors pass through. Same arithmetic as ``image_to_tensor``, run where the batch lives."""
    out = dict(batch)
    for key, value in batch.items():
        if value.dtype == torch.uint8 and key.startswith((K.OBS_IMAGE_PREFIX,
                                                          K.FUTURE_IMAGE_PREFIX)):
            out[key] = value.to(torch.float32).div_(255.0)
    return out


def observation_batch(
    state_history: npt.ArrayLike,
    images: Mapping[str, npt.NDArray[Any]],
    robot: str,
    preprocessor: Preprocessor,
) -> dict[str, Tensor]:
    """``Preprocessor.observation`` with a batch axis of 1: what the policy node feeds the model.

    ``state_history`` is ``[To, Ds_robot]`` in physical units, ``images`` maps each of the robot's
    camera roles to ``[To, H, W, C]`` uint8 (uint16 depth) frames, oldest first.
    """
    sample = preprocessor.observation(state_history, images, robot)
    return {k: v.unsqueeze(0) for k, v in sample.items()}
