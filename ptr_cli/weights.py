"""Score a dataset with a trained PTR scorer: which demonstrations PTR trusts.

Writes into --out (default: <checkpoint>/weights/):
  summary.json   overall, per-robot, per-source, per-dataset and per-episode weight summaries
  episodes.csv   one row per episode (robot, source, samples, mean weight, mean T, clip shares)
  robots.csv     one row per robot;  sources.csv  one row per source tag (when tagged)
  samples.csv    one row per window (episode, frame, T, weight)
  histogram.png  the weight histogram, one colour per source tag (or robot)
It replaces these only in a folder it wrote before (its summary.json), never in a dataset
folder, and checks --out before the scoring pass.

Examples:
  ptr weights runs/ptr/final data/pick
  ptr weights runs/ptr/final data/pick data/place --out report/ --batch-size 128
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EPISODE_COLUMNS = ('name', 'robot', 'source', 'samples', 'valid', 'w_mean', 'w_min', 'w_max',
                   'T_mean', 'at_min_share', 'at_max_share', 'loss_share')
GROUP_COLUMNS = ('name', 'samples', 'valid', 'w_mean', 'w_min', 'w_max', 'T_mean',
                 'at_min_share', 'at_max_share', 'loss_share')
FILES = ('summary.json', 'episodes.csv', 'robots.csv', 'sources.csv', 'samples.csv',
         'histogram.png')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='checkpoint of a run trained with weighter ptr')
    parser.add_argument('dataset', nargs='+', help='dataset directory (one or more)')
    parser.add_argument('--out', type=Path, help='output directory (default CHECKPOINT/weights)')
    parser.add_argument('--batch-size', type=int,
                        help="scoring batch (default: the run's batch_size; T depends on it)")
    parser.add_argument('--device', default='cpu', help='cpu | cuda | cuda:N')
    parser.add_argument('--seed', type=int, default=0, help='seed of the batch shuffle')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    with path.open('w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction='ignore')
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f'{v:.6g}' if isinstance(v, float) else v)
                             for k, v in row.items()})


def _histogram(path: Path, weights: Any, labels: Sequence[str], meta: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    lo, hi = float(meta['w_min']), float(meta['w_max'])
    bins = np.geomspace(max(lo, 1e-3), hi, 41).tolist()  # weights live on a ratio scale
    names = sorted(set(labels))
    series = [weights[[i for i, x in enumerate(labels) if x == n]] for n in names]
    ax.hist(series, bins=bins, stacked=True, label=[n or '(untagged)' for n in names])
    ax.set_xscale('log')
    ax.axvline(1.0, color='grey', linewidth=0.8)
    ax.set_xlabel('PTR weight w (log scale; 1 = uniform)')
    ax.set_ylabel('windows')
    ax.set_title(f'{meta["score_mode"]} score, beta={meta["beta"]:.3g}, '
                 f'clip [{lo:g}, {hi:g}], step {meta["step"]}')
    ax.legend(fontsize='small')
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def check_out(out: Path, datasets: Sequence[str]) -> None:
    """Refuse, before the scoring pass, an ``--out`` whose files this command did not write:
    a file (or dangling link) instead of a folder, a dataset folder (or one inside it), a
    folder holding any of ``FILES`` without a ``summary.json`` of ours, or one of them that is
    a link (writing would go through it)."""
    from ptr_core.errors import PtrError

    where = out.resolve()
    roots = [Path(d).resolve() for d in datasets] + [where]
    inside = next((r for r in roots if where.is_relative_to(r) and (r / 'manifest.json').exists()),
                  None)
    if inside is not None:
        msg = f'{out}: is inside the dataset folder {inside}; write the report elsewhere'
        raise PtrError(msg)
    if (out.exists() or out.is_symlink()) and not out.is_dir():
        what = 'a dangling link' if not out.exists() else 'a file'
        msg = f'{out}: is {what}; --out is a folder'
        raise PtrError(msg)
    present = [out / n for n in FILES if (out / n).exists() or (out / n).is_symlink()]
    link = next((f for f in present if f.is_symlink() or not f.is_file()), None)
    if link is not None:
        msg = f'{link}: is a link or not a file; ptr weights writes only its own plain files'
        raise PtrError(msg)
    if present and not _ours(out / 'summary.json'):
        msg = (f'{present[0]}: exists, and {out} holds no summary.json that ptr weights wrote; '
               'it replaces only its own reports: choose another --out')
        raise PtrError(msg)


def _ours(summary: Path) -> bool:
    """Whether ``summary`` is a summary.json that ``ptr weights`` wrote."""
    try:
        obj = json.loads(summary.read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and {'meta', 'overall', 'episodes', 'robots'} <= set(obj)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ptr_core.weighting.ptr.report import score_dataset, summarize

    out: Path = args.out or Path(args.checkpoint) / 'weights'
    check_out(out, args.dataset)  # before the pass, not after it

    bar = None if args.no_progress else tqdm(desc='scoring', unit='window', dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    try:
        scores = score_dataset(args.checkpoint, args.dataset, batch_size=args.batch_size,
                               device=args.device, seed=args.seed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    summary = summarize(scores)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'summary.json').write_text(json.dumps(summary, indent=1))
    _csv(out / 'episodes.csv', summary['episodes'], EPISODE_COLUMNS)
    _csv(out / 'robots.csv', summary['robots'], GROUP_COLUMNS)
    if summary['sources']:
        _csv(out / 'sources.csv', summary['sources'], GROUP_COLUMNS)
    with (out / 'samples.csv').open('w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['episode', 'robot', 'source', 'frame', 'valid', 'T', 'weight'])
        for i in range(len(scores)):
            writer.writerow([scores.episode[i], scores.robot[i], scores.source[i],
                             int(scores.frame[i]), int(scores.valid[i]),
                             f'{scores.score[i]:.6g}', f'{scores.weight[i]:.6g}'])
    labels = scores.source if any(scores.source) else scores.robot
    _histogram(out / 'histogram.png', scores.weight, labels, scores.meta)

    meta, overall = summary['meta'], summary['overall']
    print(f'{meta["checkpoint"]}: {overall["samples"]} windows, {meta["score_mode"]} score, '
          f'beta {meta["beta"]:.3g}, mean w {overall["w_mean"]:.3f}, '
          f'ESS/N {overall["ess_ratio"]:.3f}, at w_min {overall["at_min_share"]:.1%}, '
          f'at w_max {overall["at_max_share"]:.1%}')
    for title, rows in (('robot', summary['robots']), ('source', summary['sources'])):
        if not rows:
            continue
        print(f'{title:<24} {"windows":>8} {"mean w":>8} {"mean T":>8} {"loss share":>10}')
        for r in rows:
            print(f'{r["name"] or "(untagged)":<24} {r["samples"]:>8} {r["w_mean"]:>8.3f} '
                  f'{r["T_mean"]:>8.3f} {r["loss_share"]:>10.1%}')
    print(f'wrote {out}/summary.json, episodes.csv, robots.csv, samples.csv, histogram.png')
    return 0
