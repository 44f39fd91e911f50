"""``ptr benchmark``: does PTR beat uniform post-training on mixed-quality data? Measured end to
end through the real pipeline, on Meta-World.

Stages (each resumable: a finished stage or cell is skipped when the output folder is reused):

1. **record** — per target task, the configured source mix (``mix``) and, optionally, an
   expert-only control set (``control_mix``); expert demonstrations of the other
   ``pretrain_tasks``. Real MCAP bags, both recording setups (``record-sim``'s code).
2. **ingest** — ``bag_tools.ingest`` with the setups' robot profiles (state-only copies of them
   unless ``images``): ``data/pretrain``, ``data/<task>/mix``, ``data/<task>/control``.
3. **pretrain** — one base policy per head, uniform weights, on the pretraining tasks.
4. **post-train + evaluate** — for every task x head x method x seed: ``train(init=base)`` on the
   task's mixed data (same base, model, steps and seed for every method), then closed-loop
   success in the simulator on held-out goals (``eval_episodes`` per cell, split over the
   setups; the same goals for every method of a seed). The control set runs
   ``control_methods`` on ``control_heads``.
5. **report** — ``results.json``, ``results.md`` (success mean ± std over seeds, per-source mean
   weights, identification accuracy, step cost) and plots: ``success.png``,
   ``weights_by_source.png``, ``diagnostics.png``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bag_tools.lifetime import spawn_pool
from ptr_sim.benchmark_config import BenchmarkConfig, MethodSpec
from ptr_sim.recorder import plan_episodes, record, write_profile
from ptr_sim.setups import get_setup

__all__ = ['Cell', 'collect_results', 'run_benchmark', 'summarize', 'write_report']

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
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


def _json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


# -- stages 1-2: record and ingest ------------------------------------------------------------
def _record_and_ingest(
    cfg: BenchmarkConfig, name: str, tasks: Sequence[str], mix: dict[str, int], seed: int,
    out: Path, say: Say,
) -> Path:
    """Record ``mix`` of ``tasks`` into ``out/bags/<name>``, ingest it into ``out/data/<name>``."""
    data = out / 'data' / name
    marker = data / '.complete'
    plan = json.dumps({'tasks': list(tasks), 'mix': dict(mix), 'seed': seed,
                       'setups': list(cfg.setups), 'image_size': cfg.image_size,
                       'record_max_steps': cfg.record_max_steps, 'images': cfg.images},
                      sort_keys=True, default=str)
    if _marker_matches(marker, plan, say):
        return data
    bags = out / 'bags' / name
    shutil.rmtree(bags, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    reqs = plan_episodes(tasks, cfg.setups, {k: v for k, v in mix.items() if v > 0}, seed=seed)
    t0 = time.monotonic()
    eps = record(reqs, bags, image_size=cfg.image_size, max_steps=cfg.record_max_steps,
                 render=cfg.images)
    ok = sum(e.success for e in eps)
    say(f'  recorded {name}: {len(eps)} episodes ({ok} successful) in '
        f'{time.monotonic() - t0:.0f} s')
    _ingest_setups(cfg, bags, data, out)
    marker.write_text(plan + '\n')
    return data


def _marker_matches(marker: Path, plan: str, say: Say) -> bool:
    """Whether a finished stage's ``.complete`` marker holds ``plan`` (what it was made from);
    a marker from other settings is said and the stage redone."""
    if not marker.exists():
        return False
    if marker.read_text().strip() == plan:
        return True
    say(f'  {marker.parent} was made with other settings: recording it again')
    return False


def _ingest_setups(cfg: BenchmarkConfig, bags: Path, data: Path, out: Path) -> None:
    """Ingest ``bags/setup_<s>`` of every setup into ``data`` with that setup's profile."""
    from bag_tools.ingest import ingest
    from bag_tools.profile import load_profile

    for setup in cfg.setups:
        folder = bags / f'setup_{setup}'
        if not folder.is_dir():
            continue
        profile = write_profile(setup, out / 'profiles' / f'metaworld_{setup}.yaml',
                                cameras=cfg.images)
        res = ingest([folder], load_profile(profile), data)
        if not res.ok:
            failed = [b.reason for b in res.bags if b.reason]
            msg = f'ingest of {folder} failed: {failed[:1]}'
            raise RuntimeError(msg)


def _experts_subset(cfg: BenchmarkConfig, name: str, out: Path, say: Say) -> Path:
    """``data/<name>.experts``: the expert bags of the recorded set ``name``, copied and
    ingested alone (the same episodes, byte for byte, without the others)."""
    data = out / 'data' / f'{name}.experts'
    marker = data / '.complete'
    source = out / 'data' / name / '.complete'
    source_plan = source.read_text().strip() if source.exists() else ''
    plan = json.dumps({'experts_of': name, 'plan': source_plan}, sort_keys=True)
    if _marker_matches(marker, plan, say):
        return data
    src, bags = out / 'bags' / name, out / 'bags' / f'{name}.experts'
    shutil.rmtree(bags, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    n = 0
    for folder in sorted(src.glob('setup_*/*__expert__*')):
        shutil.copytree(folder, bags / folder.parent.name / folder.name)
        n += 1
    if not n:
        msg = f'{src}: no expert episodes to train on alone (experts_alone)'
        raise RuntimeError(msg)
    _ingest_setups(cfg, bags, data, out)
    say(f'  {name}.experts: its {n} expert episodes alone')
    marker.write_text(plan + '\n')
    return data


# -- stages 3-4: training and evaluation (run in worker processes) ---------------------------
def _train_config(cfg: BenchmarkConfig, out_dir: Path, *, datasets: Sequence[Path], head: str,
                  steps: int, seed: int, method: MethodSpec) -> Any:
    import yaml

    from ptr_core.configuration import TrainConfig, apply_overrides, from_dict

    path = Path(cfg.train_config)
    if not path.is_absolute():
        path = REPO / path
    data = yaml.safe_load(path.read_text()) or {}
    apply_overrides(data, [
        *cfg.train_overrides, f'out_dir={out_dir}', f'steps={steps}', f'policy.head={head}',
        f'seed={seed}', f'save_every={steps}',
    ])
    data.setdefault('data', {})['datasets'] = [str(d) for d in datasets]
    data['weighter'] = {'name': method.weighter, 'options': dict(method.options)}
    return from_dict(TrainConfig, data)


def _train(cfg: BenchmarkConfig, out_dir: Path, datasets: Sequence[Path], head: str,
           steps: int, seed: int, method: MethodSpec, init: Path | None, *,
           threads: int | None = None) -> tuple[Path, float]:
    import torch

    from ptr_core.trainer import train

    torch.set_num_threads(threads or cfg.threads)
    final = out_dir / 'final'
    if (final / 'config.json').exists():
        return final, float('nan')
    shutil.rmtree(out_dir, ignore_errors=True)
    tc = _train_config(cfg, out_dir, datasets=datasets, head=head, steps=steps, seed=seed,
                       method=method)
    t0 = time.monotonic()
    res = train(tc, init=init)
    assert res.final is not None
    return res.final, time.monotonic() - t0


def _pretrain(args: tuple[BenchmarkConfig, str, str, str]) -> str:
    cfg, out, data, head = args
    run = Path(out) / 'runs' / 'base' / head
    fingerprint = _hash({'base': head, 'data': [data, _data_plan(Path(data))],
                         'train': _train_fingerprint(cfg, cfg.pretrain_steps)})
    return _train_stage(cfg, run, fingerprint, Path(out) / 'runs' / '.stale' / 'base' / head,
                        [Path(data)], head, cfg.pretrain_steps, 0, None)


def _train_stage(cfg: BenchmarkConfig, run: Path, fingerprint: str, stale: Path,
                 datasets: Sequence[Path], head: str, steps: int, seed: int,
                 init: Path | None, threads: int | None = None) -> str:
    """A uniform training stage (the base, a warm start): reused when its checkpoint was
    trained with ``fingerprint``, else trained afresh (an old one moved to ``stale``)."""
    reusable_result(run, fingerprint, stale)
    final, _ = _train(cfg, run, datasets, head, steps, seed, MethodSpec('uniform', 'uniform'),
                      init, threads=threads)
    _json(run / FINGERPRINT, {'fingerprint': fingerprint, 'stage': str(run)})
    return str(final)


def _warm_start(args: tuple[BenchmarkConfig, str, Cell, str | None, int]) -> str:
    """The uniform warm start of one (task, data, head, seed): its final checkpoint."""
    cfg, out, cell, base, threads = args
    fingerprint = _hash({'warm': cell.key, 'base': [base, _fingerprint_of(base)],
                         'data': _data_plan(Path(out) / 'data' / cell.task / cell.data),
                         'train': _train_fingerprint(cfg, cfg.warm_start_steps)})
    return _train_stage(cfg, Path(out) / _warm_dir(cell), fingerprint,
                        Path(out) / 'runs' / '.stale' / _warm_dir(cell).relative_to('runs'),
                        [Path(out) / 'data' / cell.task / cell.data], cell.head,
                        cfg.warm_start_steps, cell.seed, Path(base) if base else None,
                        threads=threads)


def _warm_dir(cell: Cell) -> Path:
    return Path('runs') / 'warm' / cell.task / cell.data / cell.head / f'seed{cell.seed}'


def _warm_starts(cfg: BenchmarkConfig, out: Path, todo: Sequence[Cell],
                 bases: dict[str, str | None], say: Say) -> list[str | None]:
    """Each cell's base: its warm start when ``warm_start_steps`` (trained here, once per
    task, data, head and seed), else its head's pretrained base."""
    if not cfg.warm_start_steps:
        return [bases.get(c.head) for c in todo]
    uniform = MethodSpec('uniform', 'uniform')

    def key(c: Cell) -> tuple[str, str, str, int]:
        return c.task, c.data, c.head, c.seed

    runs = {key(c): Cell(c.task, c.head, uniform, c.seed, c.data) for c in todo}
    say(f'  warm start: {cfg.warm_start_steps} uniform steps on each data set '
        f'({len(runs)} runs), the base of every method')
    # fewer runs than workers (the demo: one): the idle workers' cores go to torch threads
    threads = cfg.threads * max(1, cfg.workers // len(runs))
    finals = _pool_map(_warm_start, [(cfg, str(out), r, bases.get(r.head), threads)
                                     for r in runs.values()],
                       cfg.workers, lambda f: say(f'  warm start: {f}'))
    by_key = dict(zip(runs, finals))
    return [by_key[key(c)] for c in todo]


def _metrics(run: Path) -> list[dict[str, float]]:
    file = run / 'metrics.jsonl'
    if not file.exists():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def _late_mean(rows: list[dict[str, float]], prefix: str) -> dict[str, float]:
    """Mean of each ``prefix*`` metric over the second half of training."""
    if not rows:
        return {}
    last = rows[-1]['step']
    late = [r for r in rows if r['step'] > last / 2] or rows[-1:]
    keys = sorted({k for r in late for k in r if k.startswith(prefix)})
    return {k[len(prefix):]: float(np.nanmean([r[k] for r in late if k in r])) for k in keys}


def _run_cell(args: tuple[BenchmarkConfig, str, Cell, str | None]) -> dict[str, Any]:
    cfg, out_s, cell, base = args
    import torch

    out = Path(out_s)
    run = out / 'runs' / cell.key
    result_file = run / 'result.json'
    data = out / 'data' / cell.task / cell.data
    fingerprint = cell_fingerprint(cfg, cell, base, data)
    loaded = reusable_result(run, fingerprint, out / 'runs' / '.stale' / cell.key)
    if loaded is not None:
        return loaded
    torch.set_num_threads(cfg.threads)  # the scoring pass too, not only training
    method, trust = cell.method, None
    if method.weighter == 'trust' and 'oracle' in method.options:  # the recorded tags' trust
        file, trust = _oracle_trust(out, cell, float(method.options['oracle']))
        opts = {k: v for k, v in method.options.items() if k != 'oracle'}
        method = MethodSpec(method.name, 'trust', {**opts, 'file': str(file)})
    elif method.weighter == 'trust':  # score before training, then sample by trust
        scorer_base = base
        if method.options.get('base') == 'uniform':  # the demo: no pretraining stage
            scorer_base = str(out / 'runs' / Cell(cell.task, cell.head, MethodSpec(
                'uniform', 'uniform'), cell.seed, cell.data).key / 'final')
        file, trust = _score_trust(out, cell, scorer_base)
        opts = {k: v for k, v in method.options.items() if k not in ('score', 'base')}
        method = MethodSpec(method.name, 'trust', {**opts, 'file': str(file)})
    cpu0 = time.process_time()
    final, train_s = _train(cfg, run, [data], cell.head, cfg.posttrain_steps, cell.seed,
                            method, Path(base) if base else None)
    train_cpu_s = time.process_time() - cpu0
    _json(run / FINGERPRINT, {'fingerprint': fingerprint, 'cell': cell.key})
    t0 = time.monotonic()
    per_setup, successes = _evaluate_cell(cfg, cell, final)
    rows = _metrics(run)
    weights = _late_mean(rows, 'weighter/w_mean/source/')
    diag = _late_mean(rows, 'weighter/')
    result = {
        'task': cell.task, 'head': cell.head, 'method': cell.method.name, 'seed': cell.seed,
        'data': cell.data, 'fingerprint': fingerprint, 'success_rate': float(np.mean(successes)),
        'episodes': len(successes), 'successes': [bool(s) for s in successes],
        'per_setup': per_setup, 'weights_by_source': weights,
        'nce_acc': diag.get('nce_acc'), 'w_at_min_share': diag.get('w_at_min_share'),
        'w_at_max_share': diag.get('w_at_max_share'), 'ess_ratio': diag.get('ess_ratio'),
        'train_s': train_s, 'train_cpu_s': train_cpu_s, 'eval_s': time.monotonic() - t0,
        'samples_per_s': float(np.nanmean([r.get('samples_per_s', np.nan) for r in rows]))
        if rows else None,
        'checkpoint': str(final),
    }
    if trust is not None:
        result.update(_trust_fields(trust))
    _json(result_file, result)
    return result


FINGERPRINT = 'cell.json'  # beside a cell's checkpoint: what it was trained with


def cell_fingerprint(cfg: BenchmarkConfig, cell: Cell, base: str | None,
                     data: Path | None = None) -> str:
    """A hash of everything a cell's result depends on besides its recorded data: the method and
    its options (a trust method's scorer options resolved against today's ``TrustConfig``
    defaults, so a changed ``ptr score`` default changes it), the base and its own
    fingerprint, what its data set was recorded from (``data``'s ``.complete`` marker), the
    training config file's text, overrides and steps, and the evaluation settings."""
    method: dict[str, Any] = {'name': cell.method.name, 'weighter': cell.method.weighter,
                              'options': dict(cell.method.options)}
    if cell.method.weighter == 'trust' and 'oracle' not in cell.method.options:
        method['options']['score'] = _resolved_score_options(cell)  # the oracle runs no scorer
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
    return [hashlib.sha256(text.encode()).hexdigest(), list(cfg.train_overrides), steps]


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


def _evaluate_cell(cfg: BenchmarkConfig, cell: Cell,
                   final: Path) -> tuple[dict[str, float], list[bool]]:
    """Success rate per setup and every episode's success, ``eval_episodes`` split over the
    setups, each seeded from the cell's seed."""
    from ptr_core.inference import ExecutionConfig
    from ptr_sim.evaluate import CheckpointPolicy, evaluate

    per_setup: dict[str, float] = {}
    successes: list[bool] = []
    n = max(1, cfg.eval_episodes // len(cfg.setups))
    for k, setup in enumerate(cfg.setups):
        policy = CheckpointPolicy(final, get_setup(setup).robot, seed=cell.seed,
                                  execution=ExecutionConfig(cfg.execute, ensemble=False))
        res = evaluate(cell.task, policy, setup=setup, episodes=n, seed=cell.seed * 10 + k,
                       max_steps=cfg.eval_max_steps, images=cfg.images)
        per_setup[setup] = res.success_rate
        successes += res.success
    return per_setup, successes


def _trust_fields(trust: dict[str, Any]) -> dict[str, Any]:
    """The trust-scoring columns of a cell's result."""
    return {'trust_auroc': trust['auroc'],
            'trust_auroc_length': trust['auroc_length_controlled'],
            'trust_by_source': trust['trust_by_source'],
            'scoring_s': trust['scoring_s'],
            'scoring_cpu_s': trust['seconds'].get('cpu_s'),
            'baselines_cpu_s': trust['seconds'].get('probes_cpu_s'),
            'trust_file': trust['file']}


def _score_trust(out: Path, cell: Cell, base: str | None) -> tuple[Path, dict[str, Any]]:
    """The cell's trust file: ``ptr score`` on its data with the base of its head, seeded by
    the cell's seed; computed once per (task, data, head, options, seed), shared by the arms
    that apply it differently (a lock file keeps two workers from scoring it twice)."""
    from bag_tools.trust import write_trust
    from ptr_core.trust import TrustConfig, score_datasets

    if base is None or not (Path(base) / 'config.json').exists():
        msg = (f'{cell.method.name}: trust methods need a base checkpoint (pretrain_tasks, or '
               f'base: uniform after the uniform cell); {base} is missing')
        raise RuntimeError(msg)
    opts = {**dict(cell.method.options.get('score', {})), 'seed': cell.seed}
    # keyed by every resolved scorer option, so a changed default never reuses an old file
    resolved = _resolved_score_options(cell)
    key = hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:10]
    folder = out / 'trust' / cell.task / cell.data / cell.head / Path(base).parent.name / key
    file, report = folder / 'trust.json', folder / 'report.json'
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / '.lock'
    while not report.exists():
        if not _take_lock(lock):
            time.sleep(2.0)
            continue
        try:
            t0 = time.monotonic()
            res = score_datasets([out / 'data' / cell.task / cell.data], init=base,
                                 config=TrustConfig.from_mapping(opts))
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
    from ptr_core.trust.crossfit import EXPERT, signal_aurocs

    if not 0.0 <= floor < 1.0:  # load_benchmark_config refuses it first
        msg = f'{cell.method.name}: oracle: {floor!r} is not a trust floor in [0, 1)'
        raise ValueError(msg)
    ds = Dataset.open(out / 'data' / cell.task / cell.data)
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
    folder = out / 'trust' / cell.task / cell.data / f'oracle-{floor:g}'
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
    """A trust cell's ``ptr score`` options with every default filled in (and its seed)."""
    from ptr_core.trust import TrustConfig

    opts = {**dict(cell.method.options.get('score', {})), 'seed': cell.seed}
    resolved: dict[str, Any] = TrustConfig.from_mapping(opts).to_dict()
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


def _pool_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int,
              on_done: Callable[[Any], None]) -> list[Any]:
    if workers <= 1 or len(items) <= 1:
        outs = []
        for item in items:
            o = fn(item)
            on_done(o)
            outs.append(o)
        return outs
    with spawn_pool(workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        outs = []
        for fut in futures:
            o = fut.result()
            on_done(o)
            outs.append(o)
        return outs


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


def run_benchmark(cfg: BenchmarkConfig, out: str | Path, *, say: Say = log.info) -> dict[str, Any]:
    """Run every stage into ``out``; return the summary (also written to ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _json(out / 'benchmark_config.json', cfg.to_dict())
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    say(f'[1/4] record + ingest ({len(cfg.tasks)} target tasks, mix {cfg.mix})')
    for i, task in enumerate(cfg.tasks):
        for j, (data, mix) in enumerate(cfg.mixed_data.items()):
            _record_and_ingest(cfg, f'{task}/{data}', [task], mix, 100 + i + 200 * j, out, say)
            if cfg.experts_alone:
                _experts_subset(cfg, f'{task}/{data}', out, say)
        if cfg.control_mix:
            _record_and_ingest(cfg, f'{task}/control', [task], cfg.control_mix, 200 + i, out,
                               say)
    pre = None
    if cfg.pretrain_tasks and cfg.pretrain_episodes:
        pre = _record_and_ingest(cfg, 'pretrain', list(cfg.pretrain_tasks),
                                 {'expert': cfg.pretrain_episodes}, 1, out, say)
    timings['record_ingest_s'] = time.monotonic() - t0

    t0 = time.monotonic()
    bases: dict[str, str | None] = dict.fromkeys(cfg.heads)
    if pre is not None:
        heads = sorted(set(cfg.heads) | (set(cfg.control_heads) if cfg.control_mix else set()))
        say(f'[2/4] pretrain base policies ({", ".join(heads)}) on '
            f'{", ".join(cfg.pretrain_tasks)}: {cfg.pretrain_steps} steps')
        finals = _pool_map(_pretrain, [(cfg, str(out), str(pre), h) for h in heads],
                           cfg.workers, lambda f: say(f'  base: {f}'))
        bases = dict(zip(heads, finals))
    else:
        say('[2/4] no pretraining tasks: ' + ('a uniform warm start on each data set (stage 3)'
                                              if cfg.warm_start_steps else
                                              'post-training starts from scratch'))
    timings['pretrain_s'] = time.monotonic() - t0

    t0 = time.monotonic()
    todo = cells(cfg)
    say(f'[3/4] post-train + evaluate {len(todo)} cells ({cfg.posttrain_steps} steps, '
        f'{cfg.eval_episodes} held-out goals each)')
    done = [0]

    def on_cell(r: dict[str, Any]) -> None:
        done[0] += 1
        say(f'  [{done[0]}/{len(todo)}] {r["task"]} {r["data"]} {r["head"]} {r["method"]} '
            f'seed {r["seed"]}: success {r["success_rate"]:.2f}')

    cell_bases = _warm_starts(cfg, out, todo, bases, say)
    results = _pool_map(_run_cell, [(cfg, str(out), c, b) for c, b in zip(todo, cell_bases)],
                        cfg.workers, on_cell)
    timings['posttrain_eval_s'] = time.monotonic() - t0
    say('[4/4] report')
    summary = summarize(cfg, results)
    summary['timings'] = timings
    write_report(summary, out)
    return summary


# -- stage 5: report --------------------------------------------------------------------------
def collect_results(cfg: BenchmarkConfig, out: str | Path) -> list[dict[str, Any]]:
    """The finished cells' results in ``out`` (for a report while the benchmark still runs)."""
    found = []
    for cell in cells(cfg):
        file = Path(out) / 'runs' / cell.key / 'result.json'
        if file.exists():
            found.append(json.loads(file.read_text()))
    return found


def _mean_std(xs: Sequence[float | None]) -> tuple[float, float]:
    arr = np.asarray([x for x in xs if x is not None], dtype=float)
    if not len(arr):
        return float('nan'), float('nan')
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarize(cfg: BenchmarkConfig, results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds per (task, data, head, method); weights per source per method."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r['task'], r['data'], r['head'], r['method']), []).append(r)
    table = []
    for (task, data, head, method), rs in groups.items():
        mean, std = _mean_std([r['success_rate'] for r in rs])
        acc, _ = _mean_std([r['nce_acc'] for r in rs if r.get('nce_acc') is not None])
        table.append({'task': task, 'data': data, 'head': head, 'method': method,
                      'success_mean': mean, 'success_std': std, 'seeds': len(rs),
                      'episodes': sum(r['episodes'] for r in rs), 'nce_acc': acc,
                      'samples_per_s': _mean_std([r.get('samples_per_s') for r in rs])[0]})
    weights: dict[str, dict[str, list[float]]] = {}
    for r in results:
        if r['data'] == 'control':
            continue
        for src, w in (r.get('weights_by_source') or {}).items():
            weights.setdefault(r['method'], {}).setdefault(src, []).append(w)
    weight_table = {m: {s: _mean_std(v) for s, v in by.items()} for m, by in weights.items()}
    verdicts = []
    for task in cfg.tasks:
        for data in cfg.mixed_data:
            for head in cfg.heads:
                verdicts += _verdicts(table, (task, data, head), len(cfg.seeds))
    return {'config': cfg.to_dict(), 'degraded_share': cfg.degraded_share, 'table': table,
            'weights_by_source': weight_table, 'verdicts': verdicts,
            'paired': paired_differences(results), 'contrasts': contrasts(results),
            'trust': trust_summary(results),
            'cells': list(results)}


def _verdicts(table: Sequence[dict[str, Any]], key: tuple[str, str, str],
              n_seeds: int) -> list[dict[str, Any]]:
    """Each method's mean margin over uniform on one (task, data, head), against the larger std
    over seeds."""
    base = next((t for t in table if (t['task'], t['data'], t['head']) == key
                 and t['method'] == 'uniform'), None)
    if base is None:
        return []
    out = []
    for t in table:
        if (t['task'], t['data'], t['head']) != key or t['method'] == 'uniform':
            continue
        margin = t['success_mean'] - base['success_mean']
        noise = max(t['success_std'], base['success_std'])
        out.append({'task': key[0], 'data': key[1], 'head': key[2], 'method': t['method'],
                    'margin': margin, 'std': noise,
                    'beats_uniform': bool(margin > noise and n_seeds > 1)})
    return out


def paired_differences(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each method minus uniform on the same seeds and goals: mean per-goal difference, its 95%
    interval (normal approximation over the paired goals), and the share of the uniform →
    clean gap closed, for two clean ends: uniform on the same task's expert-only control data
    (``clean``, ``gap_closed``) and uniform on the mixed set's own expert episodes alone
    (``experts``, ``gap_closed_experts``; ``experts_alone``), each over the seeds run."""
    cells = {(r['task'], r['data'], r['head'], r['method'], r['seed']): r for r in results}
    out = []
    for row in _paired(cells, 'uniform'):
        task, data, head = row['task'], row['data'], row['head']
        row['uniform'] = row.pop('reference_mean')
        gain = row['method_mean'] - row['uniform']
        for key, ref in (('clean', 'control'), ('experts', f'{data}.experts')):
            clean = [c['success_rate'] for k, c in cells.items()
                     if k[:4] == (task, ref, head, 'uniform')]
            gap = float(np.mean(clean)) - row['uniform'] if clean else float('nan')
            row[key] = float(np.mean(clean)) if clean else float('nan')
            row['gap_closed' if key == 'clean' else 'gap_closed_experts'] = \
                gain / gap if clean and gap > 0 else float('nan')
        out.append(row)
    return out


def contrasts(results: Sequence[dict[str, Any]], reference: str = 'trust') -> list[dict[str, Any]]:
    """Each arm other than uniform and ``reference`` minus ``reference`` on the same seeds and
    goals (the ablations: what each change to the shipped trust costs or gains)."""
    cells = {(r['task'], r['data'], r['head'], r['method'], r['seed']): r for r in results}
    return [r for r in _paired(cells, reference) if r['method'] != 'uniform']


def _paired(cells: dict[tuple[str, str, str, str, int], dict[str, Any]],
            reference: str) -> list[dict[str, Any]]:
    """Every method but ``reference``, paired goal by goal with ``reference`` (same task,
    data, head, seed): mean difference and its 95% interval over the paired goals."""
    out = []
    for task, data, head, method in sorted({k[:4] for k in cells}):
        if method == reference:
            continue
        diffs, ms, us = [], [], []
        for (t2, d2, h2, m2, s2), r2 in cells.items():
            if (t2, d2, h2, m2) != (task, data, head, method):
                continue
            u = cells.get((task, data, head, reference, s2))
            a, b = r2.get('successes'), None if u is None else u.get('successes')
            if a is None or b is None or len(a) != len(b):
                continue
            diffs += [float(x) - float(y) for x, y in zip(a, b)]
            ms += [float(x) for x in a]
            us += [float(y) for y in b]
        if not diffs:
            continue
        d = np.asarray(diffs)
        half = 1.96 * float(d.std(ddof=1)) / np.sqrt(len(d)) if len(d) > 1 else float('nan')
        out.append({'task': task, 'data': data, 'head': head, 'method': method,
                    'reference': reference, 'pairs': len(d),
                    'reference_mean': float(np.mean(us)), 'method_mean': float(np.mean(ms)),
                    'diff': float(d.mean()), 'ci_low': float(d.mean()) - half,
                    'ci_high': float(d.mean()) + half})
    return out


def _mean_table(rs: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, list[float]]] = {}
    for r in rs:
        for sig, row in (r.get(key) or {}).items():
            for src, v in row.items():
                table.setdefault(sig, {}).setdefault(src, []).append(v)
    return {sig: {src: float(np.mean(v)) for src, v in row.items()} for sig, row in table.items()}


def trust_summary(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per trust arm: episode AUROC (expert vs each source) of the trust and of the baselines,
    mean over seeds; mean trust per source; scoring time relative to the post-training time."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r.get('trust_auroc') is not None:
            groups.setdefault((r['task'], r['data'], r['head'], r['method']), []).append(r)
    out = []
    for (task, data, head, method), rs in sorted(groups.items()):
        by_source: dict[str, list[float]] = {}
        for r in rs:
            for src, v in (r.get('trust_by_source') or {}).items():
                by_source.setdefault(src, []).append(v)
        ratio = [r['scoring_cpu_s'] / r['train_cpu_s'] if r.get('scoring_cpu_s')
                 and r.get('train_cpu_s') else r['scoring_s'] / r['train_s'] for r in rs
                 if r.get('scoring_s') and r.get('train_s') and np.isfinite(r['train_s'])]
        own = [(r['scoring_cpu_s'] - (r.get('baselines_cpu_s') or 0.0)) / r['train_cpu_s']
               for r in rs if r.get('scoring_cpu_s') and r.get('train_cpu_s')]
        out.append({'task': task, 'data': data, 'head': head, 'method': method,
                    'scoring_without_baselines': float(np.mean(own)) if own else float('nan'),
                    'seeds': len(rs), 'auroc': _mean_table(rs, 'trust_auroc'),
                    'auroc_length': _mean_table(rs, 'trust_auroc_length'),
                    'min_auroc_over_seeds': {
                        src: float(min((r.get('trust_auroc') or {}).get('trust', {}).get(
                            src, np.nan) for r in rs))
                        for src in (rs[0].get('trust_auroc') or {}).get('trust', {})},
                    'trust_by_source': {k: float(np.mean(v)) for k, v in by_source.items()},
                    'scoring_over_training': float(np.mean(ratio)) if ratio else float('nan')})
    return out


def _fmt(mean: float, std: float) -> str:
    return 'n/a' if np.isnan(mean) else f'{mean:.2f} ± {std:.2f}'


def markdown(summary: dict[str, Any]) -> str:
    cfg = summary['config']
    methods = [m['name'] for m in cfg['methods']]
    lines = [
        f'# ptr benchmark `{cfg["name"]}`', '',
        f'Target tasks {", ".join(cfg["tasks"])}; mix {cfg["mix"]} per task '
        f'({summary["degraded_share"]:.0%} degraded or low-attribution); base pretrained on '
        f'{", ".join(cfg["pretrain_tasks"]) or "nothing"}; {cfg["posttrain_steps"]} post-training '
        f'steps; {len(cfg["seeds"])} seeds; {cfg["eval_episodes"]} held-out goals per cell; '
        f'{"image" if cfg["images"] else "state"} observations.'
        + ''.join(f' Mixed data `{name}`: {mix}.'
                  for name, mix in (cfg.get('mixes') or {}).items())
        + (f' Clean (`control`): {cfg["control_mix"]}.' if cfg.get('control_mix') else ''),
        '',
        '## Success rate (mean ± std over seeds)', '',
        '| task | data | head | ' + ' | '.join(methods) + ' |',
        '|---|---|---|' + '---|' * len(methods),
    ]
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    n_seeds = len(cfg['seeds'])
    for t in summary['table']:
        partial = f' (n={t["seeds"]})' if t['seeds'] < n_seeds else ''
        rows.setdefault((t['task'], t['data'], t['head']), {})[t['method']] = _fmt(
            t['success_mean'], t['success_std']) + partial
    for (task, data, head), by in rows.items():
        lines.append(f'| {task} | {data} | {head} | '
                     + ' | '.join(by.get(m, '—') for m in methods) + ' |')
    wt = summary['weights_by_source']
    if wt:
        sources = sorted({s for by in wt.values() for s in by})
        lines += ['', '## Mean weight per source (mixed data, second half of training)', '',
                  '| method | ' + ' | '.join(sources) + ' |', '|---|' + '---|' * len(sources)]
        for m, by in wt.items():
            lines.append(f'| {m} | ' + ' | '.join(
                _fmt(*by[s]) if s in by else '—' for s in sources) + ' |')
    acc = [t for t in summary['table'] if not np.isnan(t['nce_acc'])]
    if acc:
        lines += ['', '## PTR diagnostics', '',
                  '| task | data | head | method | identification acc | samples/s |',
                  '|---|---|---|---|---|---|']
        for t in acc:
            lines.append(f'| {t["task"]} | {t["data"]} | {t["head"]} | {t["method"]} | '
                         f'{t["nce_acc"]:.2f} | {t["samples_per_s"]:.0f} |')
    if summary['verdicts']:
        lines += ['', '## PTR vs uniform (margin > 1 std over seeds?)', '']
        for v in summary['verdicts']:
            lines.append(f'- {v["task"]} {v.get("data", "mix")} {v["head"]} {v["method"]}: '
                         f'{v["margin"]:+.2f} '
                         f'(std {v["std"]:.2f}) → '
                         f'{"beats uniform" if v["beats_uniform"] else "no clear win"}')
    lines += _markdown_trust(summary)
    timings = summary.get('timings') or {}
    if timings:
        lines += ['', 'Wall time: ' + ', '.join(f'{k[:-2]} {v / 60:.1f} min'
                                                 for k, v in timings.items())]
    return '\n'.join(lines) + '\n'


def _markdown_trust(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    paired = summary.get('paired') or []
    if paired:
        own = any(np.isfinite(p.get('experts', np.nan)) for p in paired)
        lines += ['', '## Paired difference vs uniform (same seeds and goals)', '',
                  'clean: uniform on the expert-only control recording; '
                  + ("own experts: uniform on the mixed set's own expert episodes alone; "
                     if own else '') + 'gap closed: (method − uniform) / (clean end − uniform).',
                  '', '| task | data | head | method | goals | uniform | method | difference '
                  '[95% CI] | clean | gap closed |' + (' own experts | gap closed |' if own
                                                       else ''),
                  '|---|---|---|---|---|---|---|---|---|---|' + ('---|---|' if own else '')]

        def num(v: float, fmt: str) -> str:
            return 'n/a' if np.isnan(v) else format(v, fmt)

        for p in paired:
            lines.append(
                f'| {p["task"]} | {p["data"]} | {p["head"]} | {p["method"]} | {p["pairs"]} | '
                f'{p["uniform"]:.2f} | {p["method_mean"]:.2f} | {p["diff"]:+.2f} '
                f'[{p["ci_low"]:+.2f}, {p["ci_high"]:+.2f}] | {num(p["clean"], ".2f")} | '
                f'{num(p["gap_closed"], ".0%")} |'
                + (f' {num(p.get("experts", np.nan), ".2f")} | '
                   f'{num(p.get("gap_closed_experts", np.nan), ".0%")} |' if own else ''))
    contrast = summary.get('contrasts') or []
    if contrast:
        ref = contrast[0]['reference']
        lines += ['', f'## Each other arm vs `{ref}` (same seeds and goals)', '',
                  f'| task | data | head | method | goals | {ref} | method | difference '
                  '[95% CI] |', '|---|---|---|---|---|---|---|---|']
        for c in contrast:
            lines.append(
                f'| {c["task"]} | {c["data"]} | {c["head"]} | {c["method"]} | {c["pairs"]} | '
                f'{c["reference_mean"]:.2f} | {c["method_mean"]:.2f} | {c["diff"]:+.2f} '
                f'[{c["ci_low"]:+.2f}, {c["ci_high"]:+.2f}] |')
    for t in summary.get('trust') or []:
        sources = sorted({s for row in t['auroc'].values() for s in row})
        lines += ['', f'## Episode AUROC, expert vs source: {t["task"]} {t["data"]} {t["head"]} '
                  f'{t["method"]} ({t["seeds"]} seed(s); length-controlled in brackets)', '',
                  '| signal | ' + ' | '.join(sources) + ' |', '|---|' + '---|' * len(sources)]
        for sig, row in t['auroc'].items():
            ctrl = t['auroc_length'].get(sig, {})
            lines.append(f'| {sig} | ' + ' | '.join(
                (f'{row[s]:.2f} [{ctrl[s]:.2f}]' if s in ctrl else f'{row[s]:.2f}')
                if s in row else '—' for s in sources) + ' |')
        lines.append('')
        lines.append('Mean trust per source: ' + ', '.join(
            f'{k} {v:.2f}' for k, v in sorted(t['trust_by_source'].items()))
            + '; scoring pass / post-training time (CPU time where measured): '
            f'{t["scoring_over_training"]:.2f}'
            + ('' if np.isnan(t.get('scoring_without_baselines', np.nan)) else
               f' ({t["scoring_without_baselines"]:.2f} without the baseline probes, which '
               'only the AUROC table needs)'))
    return lines


def write_report(summary: dict[str, Any], out: Path) -> None:
    _json(out / 'results.json', summary)
    (out / 'results.md').write_text(markdown(summary))
    try:
        _plots(summary, out)
    except Exception as err:  # plots are a convenience; the table is the result
        log.warning('plots failed: %s', err)


def _plots(summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')

    _success_plot(summary, out)
    _weights_plot(summary, out)
    _trust_plot(summary, out)
    _diagnostics_plot(summary, out)


def _success_plot(summary: dict[str, Any], out: Path) -> None:
    """``success.png``: success per method for every (task, data, head), mean ± std over seeds."""
    import matplotlib.pyplot as plt

    cfg = summary['config']
    methods = [m['name'] for m in cfg['methods']]
    groups = sorted({(t['task'], t['data'], t['head']) for t in summary['table']})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) * len(methods) / 2), 4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        vals = []
        for g in groups:
            t = next((t for t in summary['table'] if (t['task'], t['data'], t['head']) == g
                      and t['method'] == m), None)
            vals.append((t['success_mean'], t['success_std']) if t else (np.nan, 0.0))
        ax.bar(np.arange(len(groups)) + j * width, [v[0] for v in vals], width,
               yerr=[v[1] for v in vals], capsize=3, label=m)
    ax.set_xticks(np.arange(len(groups)) + width * (len(methods) - 1) / 2)
    ax.set_xticklabels([f'{t}\n{d}/{h}' for t, d, h in groups], fontsize=8)
    ax.set_ylabel('success rate (held-out goals)')
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f'ptr benchmark {cfg["name"]}: success per method (mean ± std over seeds)')
    fig.tight_layout()
    fig.savefig(out / 'success.png', dpi=120)
    plt.close(fig)


def _weights_plot(summary: dict[str, Any], out: Path) -> None:
    """``weights_by_source.png``: the mean sample weight each method gave each source tag."""
    import matplotlib.pyplot as plt

    wt = summary['weights_by_source']
    if not wt:
        return
    sources = sorted({s for by in wt.values() for s in by})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sources)), 4))
    width = 0.8 / len(wt)
    for j, (m, by) in enumerate(wt.items()):
        ax.bar(np.arange(len(sources)) + j * width,
               [by.get(s, (np.nan, 0))[0] for s in sources], width,
               yerr=[by.get(s, (np.nan, 0))[1] for s in sources], capsize=3, label=m)
    ax.axhline(1.0, color='grey', lw=0.8, ls='--')
    ax.set_xticks(np.arange(len(sources)) + width * (len(wt) - 1) / 2)
    ax.set_xticklabels(sources, rotation=20, fontsize=8)
    ax.set_ylabel('mean sample weight')
    ax.legend(fontsize=8)
    ax.set_title('where PTR put its weight (per source tag)')
    fig.tight_layout()
    fig.savefig(out / 'weights_by_source.png', dpi=120)
    plt.close(fig)


def _diagnostics_plot(summary: dict[str, Any], out: Path) -> None:
    """``diagnostics.png``: mean weight per source and the weighter diagnostics over training,
    for the PTR arms of the first (task, head, seed) on the mixed data."""
    import matplotlib.pyplot as plt

    ptr_cells = [c for c in summary['cells']
                 if c['data'] == 'mix' and c.get('weights_by_source')]
    if not ptr_cells:
        return
    first = ptr_cells[0]
    chosen = [c for c in ptr_cells if (c['task'], c['head'], c['seed']) ==
              (first['task'], first['head'], first['seed'])]
    fig, axes = plt.subplots(2, len(chosen), figsize=(5 * len(chosen), 6), squeeze=False)
    for j, c in enumerate(chosen):
        rows = _metrics(Path(c['checkpoint']).parent)
        steps = [r['step'] for r in rows]
        for key in sorted({k for r in rows for k in r
                           if k.startswith('weighter/w_mean/source/')}):
            axes[0, j].plot(steps, [r.get(key, np.nan) for r in rows],
                            label=key.rsplit('/', 1)[-1])
        axes[0, j].set_title(f'{c["method"]}: mean w per source')
        axes[0, j].legend(fontsize=7)
        for key in ('nce_acc', 'w_at_max_share', 'w_at_min_share', 'ess_ratio'):
            axes[1, j].plot(steps, [r.get(f'weighter/{key}', np.nan) for r in rows],
                            label=key)
        axes[1, j].set_xlabel('step')
        axes[1, j].legend(fontsize=7)
    fig.suptitle(f'PTR diagnostics over training ({first["task"]}, {first["head"]}, '
                 f'seed {first["seed"]})')
    fig.tight_layout()
    fig.savefig(out / 'diagnostics.png', dpi=110)
    plt.close(fig)


def _trust_plot(summary: dict[str, Any], out: Path) -> None:
    """``trust_by_episode.png``: every episode's trust, coloured by its source (first trust
    cell of each task on the mixed data)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    firsts: dict[str, dict[str, Any]] = {}
    for c in summary['cells']:
        if c['data'] == 'mix' and c.get('trust_file'):
            firsts.setdefault(c['task'], c)
    if not firsts:
        return
    fig, axes = plt.subplots(len(firsts), 1, figsize=(10, 3.2 * len(firsts)), squeeze=False)
    for ax, (task, c) in zip(axes[:, 0], sorted(firsts.items())):
        report = Path(c['trust_file']).with_name('report.json')
        if not report.exists():
            continue
        eps = json.loads(report.read_text())['episodes']
        eps = sorted(eps, key=lambda e: (e['source'] != 'expert', e['source']))
        sources = sorted({e['source'] for e in eps})
        colours = {s: plt.get_cmap('tab10')(i) for i, s in enumerate(sources)}
        ax.bar(range(len(eps)), [e['trust'] for e in eps],
               color=[colours[e['source']] for e in eps])
        handles = [Patch(color=col, label=name) for name, col in colours.items()]
        ax.set_ylim(0, 1.05)
        ax.set_ylabel('trust')
        ax.set_title(f'{task}: trust per episode, grouped by source ({c["method"]}, '
                     f'seed {c["seed"]})')
        ax.legend(handles=handles, fontsize=7, ncol=len(sources), loc='upper right',
                  bbox_to_anchor=(1.0, -0.08))
    fig.tight_layout()
    fig.savefig(out / 'trust_by_episode.png', dpi=110)
    plt.close(fig)
