"""Stage 5, numbers: success mean +- std over seeds, paired differences with intervals over goals
and seeds, contrasts against the trust arm, trust per source and its AUROC."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ptr_sim.benchmark.cells import cells
from ptr_sim.benchmark_config import BenchmarkConfig


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
    return {'config': cfg.to_dict(), 'split': cfg.split,
            'degraded_share': cfg.degraded_share, 'table': table,
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
    interval clustered by seed (``clustered_interval``), and the share of the uniform →
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


#: Student's t, two-sided 95%, for 1..10 degrees of freedom (more: ``_t975``'s expansion).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def _t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964  # Cornish-Fisher: within 0.003 of the quantile from 10 degrees on
    return z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)


def clustered_interval(diffs_by_seed: Sequence[Sequence[float]]) -> tuple[float, str]:
    """The half-width of a 95% interval of the mean paired difference, clustered by seed,
    and how it was formed. Goals of one seed share that seed's recording, base and training
    draws, so they are not independent: with G >= 2 seeds the variance is the cluster-robust
    (CR1) one, ``G / (G - 1) * sum_g (sum_{i in g} (d_i - mean))^2 / N^2``, with Student's t at
    G - 1 degrees of freedom (with equal goals per seed: the t interval of the G per-seed
    means); never narrower than the interval over the goals as if independent (with few seeds
    whose means happen to agree the cluster variance can be near 0). One seed cannot show the
    seed-to-seed spread: the interval is then over the goals alone (normal approximation), and
    says so."""
    groups = [np.asarray(g, dtype=float) for g in diffs_by_seed if len(g)]
    d = np.concatenate(groups) if groups else np.zeros(0)
    if len(d) < 2:
        return float('nan'), 'none'
    if len(groups) == 1:
        return 1.96 * float(d.std(ddof=1)) / float(np.sqrt(len(d))), 'over goals (1 seed)'
    g, n, mean = len(groups), len(d), float(d.mean())
    var = g / (g - 1) * sum(float(np.sum(x - mean)) ** 2 for x in groups) / n ** 2
    goals = 1.96 * float(d.std(ddof=1)) / float(np.sqrt(n))
    return max(_t975(g - 1) * float(np.sqrt(var)), goals), f'clustered by seed ({g} seeds)'


def _paired(cells: dict[tuple[str, str, str, str, int], dict[str, Any]],
            reference: str) -> list[dict[str, Any]]:
    """Every method but ``reference``, paired goal by goal with ``reference`` (same task,
    data, head, seed): mean difference and its 95% interval, clustered by seed
    (``clustered_interval``)."""
    out = []
    for task, data, head, method in sorted({k[:4] for k in cells}):
        if method == reference:
            continue
        by_seed: list[list[float]] = []
        ms: list[float] = []
        us: list[float] = []
        for (t2, d2, h2, m2, s2), r2 in cells.items():
            if (t2, d2, h2, m2) != (task, data, head, method):
                continue
            u = cells.get((task, data, head, reference, s2))
            a, b = r2.get('successes'), None if u is None else u.get('successes')
            if a is None or b is None or len(a) != len(b):
                continue
            by_seed.append([float(x) - float(y) for x, y in zip(a, b)])
            ms += [float(x) for x in a]
            us += [float(y) for y in b]
        if not ms:
            continue
        diff = float(np.mean([x for g in by_seed for x in g]))
        half, how = clustered_interval(by_seed)
        out.append({'task': task, 'data': data, 'head': head, 'method': method,
                    'reference': reference, 'pairs': len(ms), 'seeds': len(by_seed),
                    'reference_mean': float(np.mean(us)), 'method_mean': float(np.mean(ms)),
                    'diff': diff, 'ci_low': diff - half, 'ci_high': diff + half,
                    'interval': how})
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
