"""The trust arms: scored trust (``ptr score`` on the cell's base) and the oracle (the
recording's own source tags), written as trust files beside the cell."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptr_sim.benchmark.cells import Cell, _json


def _trust_fields(trust: dict[str, Any]) -> dict[str, Any]:
    """The trust-scoring columns of a cell's result."""
    return {'trust_auroc': trust['auroc'],
            'trust_auroc_length': trust['auroc_length_controlled'],
            'trust_by_source': trust['trust_by_source'],
            'scoring_s': trust['scoring_s'],
            'scoring_cpu_s': trust['seconds'].get('cpu_s'),
            'baselines_cpu_s': trust['seconds'].get('probes_cpu_s'),
            'trust_file': trust['file']}


def _score_trust(out: Path, cell: Cell, base: str | None, *,
                 device: str = '') -> tuple[Path, dict[str, Any]]:
    """The cell's trust file: ``ptr score`` on its data with the base of its head, seeded by
    the cell's seed, on the benchmark's ``device`` (the CPU when none is set); computed once per
    (task, data, head, options, seed), shared by the arms that apply it differently (a lock file
    keeps two workers from scoring it twice). The device changes the scores only by float
    rounding, so it is not part of the file's key."""
    from bag_tools.trust import write_trust
    from ptr_core.devices import resolve_device
    from ptr_core.weighting.trust import TrustConfig, score_datasets

    if base is None or not (Path(base) / 'config.json').exists():
        msg = (f'{cell.method.name}: trust methods need a base checkpoint (pretrain_tasks, or '
               f'base: uniform after the uniform cell); {base} is missing')
        raise RuntimeError(msg)
    opts = {**dict(cell.method.options.get('score', {})), 'seed': cell.seed}
    # keyed by every resolved scorer option, so a changed default never reuses an old file
    resolved = _resolved_score_options(cell)
    key = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:10]
    # one folder per seed's data, head, base checkpoint (a warm start, a pretrained base, the
    # uniform cell's) and resolved options
    based = hashlib.sha256(str(Path(base).resolve()).encode()).hexdigest()[:8]
    folder = out / 'trust' / f'seed{cell.seed}' / cell.task / cell.data / cell.head / based / key
    file, report = folder / 'trust.json', folder / 'report.json'
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / '.lock'
    while not report.exists():
        if not _take_lock(lock):
            time.sleep(2.0)
            continue
        try:
            t0 = time.monotonic()
            res = score_datasets([cell.data_dir(out)], init=base,
                                 config=TrustConfig.from_mapping(opts),
                                 device=resolve_device(device or 'cpu', what='benchmark device'))
            write_trust(file, res.trust)
            _json(report, {
                'file': str(file), 'options': opts, 'scoring_s': time.monotonic() - t0,
                'seconds': res.seconds, 'auroc': res.aurocs(),
                'auroc_length_controlled': res.aurocs(length_controlled=True),
                'trust_by_source': _mean_trust_by_source(res.sources, res.trust.episodes),
                'episodes': [{'source': src, 'length': n, 'trust': ep.trust,
                              'score': ep.score if np.isfinite(ep.score) else None}
                             for src, n, ep in zip(res.sources, res.lengths,
                                                   res.trust.episodes)],
            })
        finally:
            lock.unlink(missing_ok=True)
    loaded: dict[str, Any] = json.loads(report.read_text())
    return file, loaded


def _oracle_trust(out: Path, cell: Cell, floor: float) -> tuple[Path, dict[str, Any]]:
    """The trust the recording's own source tags give (``oracle: FLOOR``): 1 for every frame of
    an ``expert`` episode, ``floor`` for every other (0: never drawn). Not a method — the
    benchmark's diagnostic upper bound of trust sampling: a shortfall of the scored trust
    against it is the scorer's (ranking, calibration); a shortfall of it against the experts
    alone is the residual draws' (``floor``) or the head's."""
    from bag_tools.dataset import Dataset
    from bag_tools.trust import EpisodeTrust, dataset_content_hash, make_trust_file, write_trust
    from ptr_core.data import SOURCE_TAG
    from ptr_core.weighting.trust.crossfit import EXPERT, signal_aurocs

    if not 0.0 <= floor < 1.0:  # load_benchmark_config refuses it first
        msg = f'{cell.method.name}: oracle: {floor!r} is not a trust floor in [0, 1)'
        raise ValueError(msg)
    ds = Dataset.open(cell.data_dir(out))
    digest = dataset_content_hash(ds)
    episodes, sources, lengths = [], [], []
    for ep in ds.episodes():
        source = str(ep.tags.get(SOURCE_TAG, ''))
        trust = 1.0 if source == EXPERT else floor
        episodes.append(EpisodeTrust(digest, ep.id, trust, trust, 0, np.full(ep.length, trust)))
        sources.append(source)
        lengths.append(ep.length)
    if EXPERT not in sources:
        msg = f'{cell.method.name}: oracle: {ds.root} has no episode tagged {EXPERT!r}'
        raise ValueError(msg)
    folder = out / 'trust' / f'seed{cell.seed}' / cell.task / cell.data / f'oracle-{floor:g}'
    trust_file = make_trust_file({'oracle': floor, 'tag': SOURCE_TAG}, [(ds, episodes)])
    file = write_trust(folder / 'trust.json', trust_file)
    return file, {'file': str(file), 'scoring_s': 0.0, 'seconds': {},
                  'auroc': signal_aurocs(trust_file, sources, lengths),
                  'auroc_length_controlled': {},
                  'trust_by_source': _mean_trust_by_source(sources, episodes)}


def _mean_trust_by_source(sources: Sequence[str], episodes: Sequence[Any]) -> dict[str, float]:
    """The mean episode trust of each source tag."""
    by_source: dict[str, list[float]] = {}
    for src, ep in zip(sources, episodes):
        by_source.setdefault(src, []).append(ep.trust)
    return {k: float(np.mean(v)) for k, v in by_source.items()}


def _resolved_score_options(cell: Cell) -> dict[str, Any]:
    """A trust cell's ``ptr score`` options with every default filled in (and its seed, and the
    calibration's version)."""
    from ptr_core.weighting.trust import TrustConfig
    from ptr_core.weighting.trust.calibrate import CALIBRATION_VERSION

    opts = {**dict(cell.method.options.get('score', {})), 'seed': cell.seed}
    resolved: dict[str, Any] = TrustConfig.from_mapping(opts).to_dict()
    # the calibration's rules are code, not options: a new version is a new trust file
    resolved['calibration'] = CALIBRATION_VERSION
    return resolved


def _take_lock(lock: Path) -> bool:
    """Create ``lock`` holding this process's pid; False while a live process holds it. A lock
    left by a killed run (its pid is gone, or it holds no pid) is taken over, so a resumed
    benchmark never waits on a scorer that no longer runs."""
    from bag_tools.lifetime import pid_alive

    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        try:
            text = lock.read_text().strip()
            age = time.time() - lock.stat().st_mtime
        except OSError:  # released meanwhile: the caller tries again
            return False
        if text.isdigit() and pid_alive(int(text)):
            return False
        if not text and age < 10.0:  # just created, the pid not written yet
            return False
        lock.unlink(missing_ok=True)  # stale: its writer is dead
        return _take_lock(lock)
    with os.fdopen(fd, 'w') as f:
        f.write(str(os.getpid()))
    return True
