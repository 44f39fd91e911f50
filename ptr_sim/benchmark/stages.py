"""Stages 3-4: pretrain a base per head, warm-start, post-train every cell and evaluate it in the
simulator, in spawn worker processes; ``run_benchmark`` drives every stage."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bag_tools.lifetime import spawn_pool
from ptr_sim.benchmark.baselines import baseline_trust
from ptr_sim.benchmark.cache import (
    _data_plan,
    _fingerprint_of,
    _hash,
    _train_fingerprint,
    cell_fingerprint,
    reusable_result,
)
from ptr_sim.benchmark.cells import (
    FINGERPRINT,
    REPO,
    Cell,
    Say,
    _json,
    _metrics,
    cells,
    data_dir,
)
from ptr_sim.benchmark.data import _experts_subset, _record_and_ingest
from ptr_sim.benchmark.report import write_report
from ptr_sim.benchmark.statistics import summarize
from ptr_sim.benchmark.trust_arms import _oracle_trust, _score_trust, _trust_fields
from ptr_sim.benchmark_config import BenchmarkConfig, MethodSpec
from ptr_sim.setups import get_setup

log = logging.getLogger('ptr_sim.benchmark')


def _device_override(cfg: BenchmarkConfig) -> list[tuple[str, str]]:
    """The run's ``device`` (the benchmark's ``device`` key wins over train_overrides)."""
    return [('device', cfg.device)] if cfg.device else []


def _train_config(cfg: BenchmarkConfig, out_dir: Path, *, datasets: Sequence[Path], head: str,
                  steps: int, seed: int, method: MethodSpec, threads: int = 0) -> Any:
    import yaml

    from ptr_core.configuration import TrainConfig, apply_overrides, from_dict

    path = Path(cfg.train_config)
    if not path.is_absolute():
        path = REPO / path
    data = yaml.safe_load(path.read_text()) or {}
    apply_overrides(data, [  # values, not YAML text: a folder may hold ': ' or quotes
        *cfg.train_overrides, ('out_dir', str(out_dir)), ('steps', steps),
        ('policy.head', head), ('seed', seed), ('save_every', steps),
        ('threads', threads or cfg.threads), *_device_override(cfg),
    ])
    data.setdefault('data', {})['datasets'] = [str(d) for d in datasets]
    if method.weighter == 'trust':  # trust is the data's: drawn (or loss-weighted) by the file
        opts = method.options
        data['data'].update(trust=str(opts['file']), trust_apply=opts.get('apply', 'sampling'),
                            trust_level=opts.get('level', 'episode'))
        data['weighter'] = {'name': 'uniform', 'options': {}}
    else:
        data['weighter'] = {'name': method.weighter, 'options': dict(method.options)}
    return from_dict(TrainConfig, data)


def _train(cfg: BenchmarkConfig, out_dir: Path, datasets: Sequence[Path], head: str,
           steps: int, seed: int, method: MethodSpec, init: Path | None, *,
           threads: int | None = None) -> tuple[Path, float]:
    from ptr_core.trainer import train

    final = out_dir / 'final'
    if (final / 'config.json').exists():
        return final, float('nan')
    shutil.rmtree(out_dir, ignore_errors=True)
    tc = _train_config(cfg, out_dir, datasets=datasets, head=head, steps=steps, seed=seed,
                       method=method, threads=threads or cfg.threads)  # train() sets them
    t0 = time.monotonic()
    res = train(tc, init=init)
    assert res.final is not None
    return res.final, time.monotonic() - t0


def _pretrain(args: tuple[BenchmarkConfig, str, str, str, int]) -> str:
    """One seed's base of one head, on that seed's own pretraining recording."""
    cfg, out, data, head, seed = args
    run = Path(out) / 'runs' / 'base' / head / f'seed{seed}'
    fingerprint = _hash({'base': head, 'seed': seed, 'data': [data, _data_plan(Path(data))],
                         'train': _train_fingerprint(cfg, cfg.pretrain_steps)})
    return _train_stage(cfg, run, fingerprint,
                        Path(out) / 'runs' / '.stale' / 'base' / head / f'seed{seed}',
                        [Path(data)], head, cfg.pretrain_steps, seed, None)


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
                         'data': _data_plan(cell.data_dir(Path(out))),
                         'train': _train_fingerprint(cfg, cfg.warm_start_steps)})
    return _train_stage(cfg, Path(out) / _warm_dir(cell), fingerprint,
                        Path(out) / 'runs' / '.stale' / _warm_dir(cell).relative_to('runs'),
                        [cell.data_dir(Path(out))], cell.head,
                        cfg.warm_start_steps, cell.seed, Path(base) if base else None,
                        threads=threads)


def _warm_dir(cell: Cell) -> Path:
    return Path('runs') / 'warm' / cell.task / cell.data / cell.head / f'seed{cell.seed}'


def _warm_starts(cfg: BenchmarkConfig, out: Path, todo: Sequence[Cell],
                 bases: dict[tuple[str, int], str | None], say: Say) -> list[str | None]:
    """Each cell's base: its warm start when ``warm_start_steps`` (trained here, once per
    task, data, head and seed), else its head's pretrained base of its seed."""
    if not cfg.warm_start_steps:
        return [bases.get((c.head, c.seed)) for c in todo]
    uniform = MethodSpec('uniform', 'uniform')

    def key(c: Cell) -> tuple[str, str, str, int]:
        return c.task, c.data, c.head, c.seed

    runs = {key(c): Cell(c.task, c.head, uniform, c.seed, c.data) for c in todo}
    say(f'  warm start: {cfg.warm_start_steps} uniform steps on each data set '
        f'({len(runs)} runs), the base of every method')
    # fewer runs than workers (the demo: one): the idle workers' cores go to torch threads
    threads = cfg.threads * max(1, cfg.workers // len(runs))
    finals = _pool_map(_warm_start, [(cfg, str(out), r, bases.get((r.head, r.seed)), threads)
                                     for r in runs.values()],
                       cfg.workers, lambda f: say(f'  warm start: {f}'))
    by_key = dict(zip(runs, finals))
    return [by_key[key(c)] for c in todo]


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
    data = cell.data_dir(out)
    fingerprint = cell_fingerprint(cfg, cell, base, data)
    loaded = reusable_result(run, fingerprint, out / 'runs' / '.stale' / cell.key)
    if loaded is not None:
        return loaded
    torch.set_num_threads(cfg.threads)  # the scoring pass too, not only training
    method, trust = cell.method, None
    if method.weighter == 'trust':
        file, trust = _trust_file(cfg, out, cell, base)
        opts = {k: v for k, v in method.options.items()
                if k not in ('score', 'base', 'oracle', 'baseline', 'keep')}
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


def _trust_file(cfg: BenchmarkConfig, out: Path, cell: Cell,
                base: str | None) -> tuple[Path, dict[str, Any]]:
    """A trust method's trust file and report: the recorded tags' (``oracle``), an untrained
    check's (``baseline``; ``random`` matches the frames of the set's ``trust`` arm), or
    ``ptr score``'s on the cell's base (``base: uniform``: the same seed's uniform cell)."""
    options = cell.method.options
    if 'oracle' in options:
        return _oracle_trust(out, cell, float(options['oracle']))
    if 'baseline' in options:
        shipped = next((m for m in cfg.methods if m.name == 'trust' and m.weighter == 'trust'
                        and not {'oracle', 'baseline'} & set(m.options)), None)
        matched = None
        if (options['baseline'] == 'random' or options.get('keep') == 'matched') \
                and shipped is not None:
            matched = _trust_file(cfg, out, Cell(cell.task, cell.head, shipped, cell.seed,
                                                 cell.data), base)[0]
        return baseline_trust(out, cell, matched)
    scorer_base = base
    if options.get('base') == 'uniform':  # the demo: no pretraining stage
        scorer_base = str(out / 'runs' / Cell(cell.task, cell.head, MethodSpec(
            'uniform', 'uniform'), cell.seed, cell.data).key / 'final')
    return _score_trust(out, cell, scorer_base, device=cfg.device)


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
                       split=cfg.split, max_steps=cfg.eval_max_steps, images=cfg.images)
        per_setup[setup] = res.success_rate
        successes += res.success
    return per_setup, successes


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


def _record_all(cfg: BenchmarkConfig, out: Path, say: Say) -> dict[int, Path]:
    """Record and ingest every set of every seed (each seed its own goals); the pretraining
    set of each seed, by seed (empty without pretraining tasks)."""
    pre: dict[int, Path] = {}
    for seed in cfg.seeds:
        rec = 10_000 * seed  # seed 0 records what the benchmark recorded before seeds had sets
        for i, task in enumerate(cfg.tasks):
            for j, (data, mix) in enumerate(cfg.mixed_data.items()):
                name = f'seed{seed}/{task}/{data}'
                _record_and_ingest(cfg, name, [task], mix, rec + 100 + i + 200 * j, out, say)
                if cfg.experts_alone:
                    _experts_subset(cfg, name, out, say)
            if cfg.control_mix:
                _record_and_ingest(cfg, f'seed{seed}/{task}/control', [task], cfg.control_mix,
                                   rec + 200 + i, out, say)
        if cfg.pretrain_tasks and cfg.pretrain_episodes:
            pre[seed] = _record_and_ingest(cfg, f'seed{seed}/pretrain', list(cfg.pretrain_tasks),
                                           {'expert': cfg.pretrain_episodes}, rec + 1, out, say)
    assert all(data_dir(out, s, 'pretrain') == p for s, p in pre.items())
    return pre


def run_benchmark(cfg: BenchmarkConfig, out: str | Path, *, say: Say = log.info) -> dict[str, Any]:
    """Run every stage into ``out``; return the summary (also written to ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _json(out / 'benchmark_config.json', cfg.to_dict())
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    say(f'[1/4] record + ingest ({len(cfg.tasks)} target tasks, mix {cfg.mix}, '
        f'{len(cfg.seeds)} seed(s), each its own recording)')
    pre = _record_all(cfg, out, say)
    timings['record_ingest_s'] = time.monotonic() - t0

    t0 = time.monotonic()
    bases: dict[tuple[str, int], str | None] = {}
    if pre:
        heads = sorted(set(cfg.heads) | (set(cfg.control_heads) if cfg.control_mix else set()))
        say(f'[2/4] pretrain base policies ({", ".join(heads)}; one per seed, on its own '
            f'recording) on {", ".join(cfg.pretrain_tasks)}: {cfg.pretrain_steps} steps')
        jobs = [(h, s) for s in cfg.seeds for h in heads]
        finals = _pool_map(_pretrain, [(cfg, str(out), str(pre[s]), h, s) for h, s in jobs],
                           cfg.workers, lambda f: say(f'  base: {f}'))
        bases = dict(zip(jobs, finals))
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
