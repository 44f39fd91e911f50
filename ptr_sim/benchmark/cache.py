"""What makes a finished cell or base reusable on resume: a fingerprint of every setting it was
trained with (scorer defaults resolved, base and recorded data included)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ptr_sim.benchmark.cells import FINGERPRINT, REPO, Cell
from ptr_sim.benchmark.trust_arms import _resolved_score_options
from ptr_sim.benchmark_config import BenchmarkConfig

log = logging.getLogger('ptr_sim.benchmark')


def cell_fingerprint(cfg: BenchmarkConfig, cell: Cell, base: str | None,
                     data: Path | None = None) -> str:
    """A hash of everything a cell's result depends on besides its recorded data: the method and
    its options (a trust method's scorer options resolved against today's ``TrustConfig``
    defaults, so a changed ``ptr score`` default changes it), the base and its own
    fingerprint, what its data set was recorded from (``data``'s ``.complete`` marker), the
    training config file's text, overrides and steps, and the evaluation settings."""
    method: dict[str, Any] = {'name': cell.method.name, 'weighter': cell.method.weighter,
                              'options': dict(cell.method.options)}
    # the oracle and the baselines run no scorer (random matches the trust arm: by its file)
    if cell.method.weighter == 'trust' and not {'oracle', 'baseline'} & set(cell.method.options):
        method['options']['score'] = _resolved_score_options(cell)
    options = cell.method.options
    if options.get('baseline') == 'random' or options.get('keep') == 'matched':  # the trust's
        method['matched'] = [_resolved_score_options(Cell(cell.task, cell.head, m, cell.seed,
                                                          cell.data))
                             for m in cfg.methods if m.name == 'trust']
    doc = {'cell': cell.key, 'method': method, 'base': [base, _fingerprint_of(base)],
           'data': _data_plan(data),
           'train': _train_fingerprint(cfg, cfg.posttrain_steps),
           'eval': [cfg.eval_episodes, cfg.eval_max_steps, cfg.execute, list(cfg.setups),
                    cfg.images]}
    return _hash(doc)


def _train_fingerprint(cfg: BenchmarkConfig, steps: int) -> list[Any]:
    path = Path(cfg.train_config)
    path = path if path.is_absolute() else REPO / path
    text = path.read_text() if path.is_file() else str(path)
    overrides = list(cfg.train_overrides) + ([f'device={cfg.device}'] if cfg.device else [])
    return [hashlib.sha256(text.encode()).hexdigest(), overrides, steps]


def _data_plan(data: Path | None) -> str | None:
    try:
        return (data / '.complete').read_text().strip() if data else None
    except OSError:
        return None


def _hash(doc: Any) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint_of(checkpoint: str | None) -> str | None:
    """The fingerprint a benchmark stage wrote beside ``checkpoint`` (``<run>/final``)."""
    if not checkpoint:
        return None
    file = Path(checkpoint).parent / FINGERPRINT
    try:
        value = json.loads(file.read_text()).get('fingerprint')
    except (OSError, ValueError):
        return None
    return str(value) if value else None


def reusable_result(run: Path, fingerprint: str, stale: Path) -> dict[str, Any] | None:
    """A finished cell's result when ``run`` was trained with ``fingerprint``; else None. A
    checkpoint or result trained with other settings (or before cells were fingerprinted) is
    moved to ``stale/<its fingerprint>`` — kept, never reused, never deleted — so the cell
    re-runs from scratch; an interrupted run without a checkpoint is left to ``_train``."""
    result_file, final = run / 'result.json', run / 'final' / 'config.json'
    if not result_file.exists() and not final.exists():
        return None
    had = None
    for file in (result_file, run / FINGERPRINT):
        if file.exists():
            try:
                had = json.loads(file.read_text()).get('fingerprint')
            except (OSError, ValueError):
                had = None
            if had:
                break
    if had == fingerprint:
        if result_file.exists():
            loaded: dict[str, Any] = json.loads(result_file.read_text())
            return loaded
        return None  # trained, not yet evaluated: ``_train`` reuses the checkpoint
    dest = stale / (had or 'unfingerprinted')
    if dest.exists():
        dest = dest.with_name(f'{dest.name}-{time.strftime("%Y%m%d-%H%M%S")}-{os.getpid()}')
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run, dest)
    log.warning('%s was trained with other settings (fingerprint %s, now %s): moved to %s, '
                're-running the cell', run, had or 'none', fingerprint, dest)
    return None
