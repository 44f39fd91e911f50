"""Observation encoder: one conv trunk per camera role, a state MLP and a robot embedding → ``h``.

Shapes: ``obs.images.<role> [B, To, C, H, W]`` → trunk → feature map ``[B·To, Dt, h, w]`` → mean
over space → ``[B, To, Dt]`` (the *pooled feature*) → per-role projection ``[B, To, Fi]``;
``obs.state [B, To, Ds]`` → MLP ``[B, To, Fs]``; all steps, roles and the robot embedding are
concatenated and fused by an MLP into the context ``h [B, Dh]``.

GroupNorm everywhere (not BatchNorm): the policy has an EMA copy and is trained with small
per-rank batches, where batch statistics would make the EMA and per-sample losses inconsistent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ptr_core import batch as K
from ptr_core.configuration import EncoderConfig
from ptr_core.errors import CheckpointError, ConfigError

__all__ = ['ConvTrunk', 'ObservationEncoder', 'build_trunk']


class ConvTrunk(nn.Module):
    """Stride-2 conv stages with GroupNorm + SiLU; output ``[N, channels[-1], H/2^n, W/2^n]``."""

    def __init__(self, in_channels: int, channels: Sequence[int], groups: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for c in channels:
            layers += [
                nn.Conv2d(cin, c, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(groups, c),
                nn.SiLU(),
                nn.Conv2d(c, c, 3, padding=1, bias=False),
                nn.GroupNorm(groups, c),
                nn.SiLU(),
            ]
            cin = c
        self.net = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.net(x - 0.5)
        return out


class ResNet18Trunk(nn.Module):
    """torchvision ResNet-18 (GroupNorm) without pooling/fc; weights only from a local file."""

    mean: Tensor
    std: Tensor

    def __init__(self, in_channels: int, weights: str | None) -> None:
        super().__init__()
        try:
            import torchvision
        except ImportError as err:
            msg = 'policy.encoder.trunk: resnet18 needs torchvision (pip install torchvision)'
            raise ConfigError(msg) from err
        net = torchvision.models.resnet18(
            weights=None, norm_layer=lambda c: nn.GroupNorm(max(1, c // 16), c)
        )
        if weights:
            from safetensors.torch import load_file

            path = Path(weights)
            if path.suffix != '.safetensors':
                msg = f'{path}: resnet weights must be a local .safetensors file (no pickles)'
                raise CheckpointError(msg)
            try:
                state = load_file(str(path))
            except Exception as err:
                msg = f'{path}: cannot read resnet weights: {err}'
                raise CheckpointError(msg) from err
            state = {k: v for k, v in state.items() if 'running_' not in k
                     and 'num_batches' not in k and not k.startswith('fc.')}
            net.load_state_dict(state, strict=False)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()  # type: ignore[assignment]
        self.body = nn.Sequential(*list(net.children())[:-2])
        self.out_dim = 512
        self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == 3:
            x = (x - self.mean) / self.std
        out: Tensor = self.body(x)
        return out


def build_trunk(cfg: EncoderConfig, in_channels: int) -> ConvTrunk | ResNet18Trunk:
    if cfg.trunk == 'resnet18':
        return ResNet18Trunk(in_channels, cfg.resnet_weights)
    return ConvTrunk(in_channels, cfg.channels, cfg.groups)


def _module_key(role: str) -> str:
    return re.sub(r'[^0-9A-Za-z_]', '_', role)


class ObservationEncoder(nn.Module):
    """Encodes ``obs.*`` into the context ``h`` and the future into PTR's target feature."""

    def __init__(
        self,
        cfg: EncoderConfig,
        *,
        roles: Sequence[str],
        channels: Mapping[str, int],
        state_dim: int,
        n_robots: int,
        obs_horizon: int,
    ) -> None:
        super().__init__()
        self.roles = tuple(roles)
        self.obs_horizon = obs_horizon
        self.trunks = nn.ModuleDict(
            {_module_key(r): build_trunk(cfg, channels.get(r, 3)) for r in self.roles}
        )
        trunk_dim = cfg.channels[-1] if cfg.trunk == 'conv' else 512
        self.image_proj = nn.ModuleDict(
            {_module_key(r): nn.Linear(trunk_dim, cfg.image_feature_dim) for r in self.roles}
        )
        self.state_mlp = nn.Sequential(
            nn.Linear(state_dim, cfg.state_hidden), nn.SiLU(),
            nn.Linear(cfg.state_hidden, cfg.state_hidden),
        )
        self.robot_embed = nn.Embedding(max(1, n_robots), cfg.robot_embed_dim)
        step_dim = cfg.state_hidden + len(self.roles) * cfg.image_feature_dim
        self.fuse = nn.Sequential(
            nn.Linear(obs_horizon * step_dim + cfg.robot_embed_dim, cfg.context_dim), nn.SiLU(),
            nn.Linear(cfg.context_dim, cfg.context_dim),
        )
        self.context_dim = cfg.context_dim
        self.target_dim = trunk_dim if self.roles else cfg.state_hidden

    def pooled(self, role: str, images: Tensor) -> Tensor:
        """Trunk features mean-pooled over space: ``[N, C, H, W]`` → ``[N, Dt]``."""
        feat: Tensor = self.trunks[_module_key(role)](images)
        return feat.mean(dim=(-2, -1))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        state = batch[K.OBS_STATE]  # [B, To, Ds]
        b, to = state.shape[:2]
        parts = [self.state_mlp(state)]
        if self.roles:
            cam_mask = batch[K.OBS_CAMERA_MASK].to(state.dtype)  # [B, n_roles]
            for i, role in enumerate(self.roles):
                x = batch[K.obs_image_key(role)]  # [B, To, C, H, W]
                pooled = self.pooled(role, x.flatten(0, 1)).view(b, to, -1)
                proj = self.image_proj[_module_key(role)](pooled)
                parts.append(proj * cam_mask[:, i, None, None].to(proj.dtype))
        steps = torch.cat(parts, dim=-1).flatten(1)  # [B, To·step_dim]
        robot = self.robot_embed(batch[K.ROBOT_ID])
        h: Tensor = self.fuse(torch.cat([steps, robot.to(steps.dtype)], dim=-1))
        return h

    def target_feature(self, batch: Mapping[str, Tensor], prefix: str = 'future.') -> Tensor:
        """PTR target ``[B, target_dim]``: the pooled trunk feature *before* the projection,
        averaged over the camera views the robot has; state-only: the encoded state.

        Reads ``{prefix}state`` and ``{prefix}images.<role>`` (``[B, C, H, W]``, or
        ``[B, To, C, H, W]`` of which the last step is used).
        """
        if not self.roles:
            state = batch[f'{prefix}state']
            if state.dim() == 3:
                state = state[:, -1]
            out: Tensor = self.state_mlp(state)
            return out
        mask = batch[K.OBS_CAMERA_MASK].float()  # [B, n_roles]
        total: Tensor | None = None
        for i, role in enumerate(self.roles):
            x = batch[f'{prefix}images.{role}']
            if x.dim() == 5:
                x = x[:, -1]
            f = self.pooled(role, x).float() * mask[:, i, None]
            total = f if total is None else total + f
        assert total is not None
        return total / mask.sum(dim=1, keepdim=True).clamp_min(1.0)

    def extra_repr(self) -> str:
        return f'roles={list(self.roles)}, obs_horizon={self.obs_horizon}'

    def describe(self) -> dict[str, Any]:
        return {'roles': list(self.roles), 'context_dim': self.context_dim,
                'target_dim': self.target_dim}
