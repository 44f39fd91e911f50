"""1-D temporal U-Net with FiLM conditioning (the diffusion-policy action network).

``x [B, L, Da]`` (noisy chunk), ``t [B]`` (diffusion step or flow σ·1000), ``cond [B, Dh]`` →
``out [B, L, Da]`` and the action summary ``e [B, D_mid]`` = the bottleneck features mean-pooled
over time (what PTR's scorer reads; no second action encoder). ``L`` need not be a power of two:
the chunk is zero-padded to a multiple of ``2^(levels-1)`` and cropped back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['ConditionalUnet1D', 'SinusoidalEmbedding']


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(
            -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv1d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.GroupNorm(groups, cout),
            nn.Mish(),
        )

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.block(x)
        return out


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the first one's output (FiLM)."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(cin, cout, kernel, groups)
        self.block2 = Conv1dBlock(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.residual = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        out = self.block1(x)
        scale, shift = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        out = self.block2(out * (1 + scale) + shift)
        res: Tensor = self.residual(x)
        total: Tensor = out + res
        return total


class ConditionalUnet1D(nn.Module):
    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        *,
        dims: Sequence[int] = (64, 128, 256),
        kernel: int = 5,
        groups: int = 8,
        time_dim: int = 64,
    ) -> None:
        super().__init__()
        self.time = nn.Sequential(
            SinusoidalEmbedding(time_dim), nn.Linear(time_dim, 4 * time_dim), nn.Mish(),
            nn.Linear(4 * time_dim, time_dim),
        )
        c = time_dim + cond_dim
        self.levels = len(dims)
        widths = [action_dim, *dims]
        self.down = nn.ModuleList()
        for i, (cin, cout) in enumerate(itertools.pairwise(widths)):
            last = i == len(dims) - 1
            self.down.append(nn.ModuleList([
                FiLMResBlock(cin, cout, c, kernel, groups),
                FiLMResBlock(cout, cout, c, kernel, groups),
                nn.Conv1d(cout, cout, 3, stride=2, padding=1) if not last else nn.Identity(),
            ]))
        mid = dims[-1]
        self.mid = nn.ModuleList([
            FiLMResBlock(mid, mid, c, kernel, groups), FiLMResBlock(mid, mid, c, kernel, groups),
        ])
        self.up = nn.ModuleList()
        rev = list(dims)[::-1]
        for cout, cin in itertools.pairwise(rev):  # every up stage undoes one downsample
            self.up.append(nn.ModuleList([
                FiLMResBlock(cout * 2, cin, c, kernel, groups),
                FiLMResBlock(cin, cin, c, kernel, groups),
                nn.ConvTranspose1d(cin, cin, 4, stride=2, padding=1),
            ]))
        self.final = nn.Sequential(
            Conv1dBlock(dims[0], dims[0], kernel, groups), nn.Conv1d(dims[0], action_dim, 1)
        )
        self.summary_dim = mid

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        length = x.shape[1]
        mult = 2 ** (self.levels - 1)
        pad = (-length) % mult
        h = x.transpose(1, 2)  # [B, Da, L]
        if pad:
            h = F.pad(h, (0, pad))
        g = torch.cat([self.time(t).to(cond.dtype), cond], dim=-1)
        skips = []
        for stage in self.down:
            assert isinstance(stage, nn.ModuleList)
            h = stage[1](stage[0](h, g), g)
            skips.append(h)
            h = stage[2](h)
        for block in self.mid:
            h = block(h, g)
        summary = h.mean(dim=-1)  # e: pooled action-token summary [B, D_mid]
        for stage in self.up:
            assert isinstance(stage, nn.ModuleList)
            h = torch.cat([h, skips.pop()], dim=1)
            h = stage[1](stage[0](h, g), g)
            h = stage[2](h)
        out: Tensor = self.final(h)[..., :length]
        return out.transpose(1, 2), summary
