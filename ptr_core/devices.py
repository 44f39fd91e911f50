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


def resolve_device(name: str, local_rank: int = 0, *, what: str = 'device') -> torch.device:
    """The ``torch.device`` that ``name`` (cpu, cuda, cuda:N, auto) asks for; ``auto`` and a
    bare ``cuda`` take GPU ``local_rank``. Refused in one line, with ``what`` (the option's
    name) first, when it is not a device, not cpu or cuda, or this machine cannot run on it."""
    if name == 'auto':
        return torch.device(f'cuda:{local_rank}' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as err:
        msg = f'{what} {name!r}: not a device; expected cpu, cuda, cuda:N or auto'
        raise ConfigError(msg) from err
    if device.type not in ('cpu', 'cuda'):
        msg = f'{what} {name!r}: ptr runs on cpu or cuda (cuda:N) or auto'
        raise ConfigError(msg)
    if device.type == 'cuda' and not torch.cuda.is_available():
        msg = (f'{what} {name!r}: CUDA is not available on this machine (torch '
               f'{torch.__version__}); use cpu or auto')
        raise ConfigError(msg)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', local_rank)
    if device.type == 'cuda' and (device.index or 0) >= torch.cuda.device_count():
        msg = (f'{what} {name!r}: this machine has {torch.cuda.device_count()} CUDA '
               'device(s); use cuda:0 .. cuda:N-1 or auto')
        raise ConfigError(msg)
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
