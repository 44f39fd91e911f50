"""The benchmark's grid: one ``Cell`` per task x head x method x seed x data, and the small
files every stage writes beside its cell (``cell.json``, ``metrics.jsonl``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptr_sim.benchmark_config import BenchmarkConfig, MethodSpec

REPO = Path(__file__).resolve().parents[2]

Say = Callable[[str], None]


@dataclass(frozen=True)
class Cell:
    task: str
    head: str
    method: MethodSpec
    seed: int
    data: str  # 'mix' | 'control' | a name in ``mixes`` | '<one of those>.experts'

    @property
    def key(self) -> str:
        return f'{self.task}/{self.data}/{self.head}/{self.method.name}/seed{self.seed}'

    def data_dir(self, out: Path) -> Path:
        """The cell's ingested data set: its seed's own recording."""
        return data_dir(out, self.seed, f'{self.task}/{self.data}')


def data_dir(out: Path, seed: int, name: str) -> Path:
    """Where a recorded set is ingested: every seed has its own recordings (``data/seed<s>/
    <task>/<data>``, ``data/seed<s>/pretrain``), so seeds differ in their data, not only in
    their training draws."""
    return out / 'data' / f'seed{seed}' / name


def _json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _metrics(run: Path) -> list[dict[str, float]]:
    file = run / 'metrics.jsonl'
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]

FINGERPRINT = 'cell.json'  # beside a cell's checkpoint: what it was trained with


def cells(cfg: BenchmarkConfig) -> list[Cell]:
    """Every cell, seed by seed and head by head (a partial run has whole seeds and heads): per
    task, each mixed data set with every method (and uniform on its experts alone when
    ``experts_alone``), then the control set with ``control_methods``."""
    control = [m for m in cfg.methods if m.name in cfg.control_methods] if cfg.control_mix else []
    heads = list(dict.fromkeys([*cfg.heads, *(cfg.control_heads if control else ())]))
    uniform = next((m for m in cfg.methods if m.name == 'uniform'), None) \
        if cfg.experts_alone else None
    out = []
    for seed in cfg.seeds:
        for head in heads:
            for task in cfg.tasks:
                if head in cfg.heads:
                    out += [Cell(task, head, method, seed, data) for data in cfg.mixed_data
                            for method in cfg.methods]
                    out += [Cell(task, head, uniform, seed, f'{data}.experts')
                            for data in cfg.mixed_data if uniform is not None]
                if head in cfg.control_heads:
                    out += [Cell(task, head, method, seed, 'control') for method in control]
    return out
