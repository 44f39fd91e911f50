"""Where a run computes: the device, the ``torchrun`` process group, bf16 autocast."""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ptr_core.configuration import TrainConfig
from ptr_core.errors import ConfigError

__all__ = ['Distributed', 'autocast', 'resolve_device', 'setup_distributed']


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        msg = f'device: {name!r} requested but CUDA is not available'
        raise ConfigError(msg)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', local_rank)
    return device


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> Distributed:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return Distributed()
    int(os.environ.get('RANK', '0'))
    local = int(os.environ.get('LOCAL_RANK', '0'))
    owns = False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and device_name != 'cpu'
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group('nccl' if cuda else 'gloo')
        owns = True
    return Distributed(dist.get_rank(), dist.get_world_size(), local, owns)


def autocast(config: TrainConfig, device: torch.device) -> Any:
    use = config.amp == 'bf16' or (config.amp == 'auto' and device.type == 'cuda')
    if not use:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
