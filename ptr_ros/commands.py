"""The command lines ``train.launch.py`` runs, built here so they are testable without launch.

``ptr ingest`` when bags are given, then ``ptr train`` -- through ``torch.distributed.run`` (what
``torchrun`` is) when more than one GPU is asked for. Both run as ``python -m`` of the
interpreter that runs the launch file, so they work from a colcon install where ``ptr`` is in
``lib/ptr`` rather than on ``PATH``.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ptr_core.errors import PtrError

__all__ = ['TrainPlan', 'plan_training', 'split_list']

CLI = ('-m', 'ptr_cli.main')


def split_list(text: str) -> list[str]:
    """``'a b,c'`` -> ``['a', 'b', 'c']`` (launch arguments are strings)."""
    return [p for chunk in shlex.split(text) for p in chunk.split(',') if p]


@dataclass(frozen=True)
class TrainPlan:
    ingest: list[str] | None  # None: no bags, train on the datasets as given
    train: list[str]
    datasets: list[str]


def plan_training(
    *,
    config: str,
    output: str,
    datasets: Sequence[str] = (),
    bags: Sequence[str] = (),
    profile: str = '',
    dataset_out: str = '',
    device: str = 'auto',
    gpus: int = 1,
    extra: Sequence[str] = (),
    python: str = sys.executable,
) -> TrainPlan:
    """Commands for: [ingest ``bags`` with ``profile`` into ``dataset_out``] then train."""
    if not config:
        msg = 'config is empty: pass config:=config/train/<name>.yaml'
        raise PtrError(msg)
    if not output:
        msg = 'output is empty: pass output:=<run directory>'
        raise PtrError(msg)
    if gpus < 1:
        msg = f'gpus must be >= 1, got {gpus}'
        raise PtrError(msg)
    if not bags and not datasets:
        msg = 'give datasets:=<dir,...> or bags:=<bag,...> with profile:=<robot profile>'
        raise PtrError(msg)
    used = list(datasets)
    ingest = None
    if bags:
        if not profile:
            msg = 'bags need a robot profile: pass profile:=config/robots/<robot>.yaml'
            raise PtrError(msg)
        target = dataset_out or str(Path(output) / 'dataset')
        ingest = [python, *CLI, 'ingest', *bags, '--profile', profile, '--out', target,
                  '--no-progress']
        used.append(target)
    args = ['train', '--config', config, '--out', output, '--no-progress']
    for path in used:
        args += ['--dataset', path]
    if device:
        args += ['--set', f'device={device}']
    args += list(extra)
    if gpus > 1:
        launcher = [python, '-m', 'torch.distributed.run', '--standalone',
                    f'--nproc_per_node={gpus}']
        train = [*launcher, *CLI, *args]
    else:
        train = [python, *CLI, *args]
    return TrainPlan(ingest=ingest, train=train, datasets=used)
