"""Time and peak memory (RSS) of ``ptr score``'s stages at fleet size, on this machine.

Setup: a synthetic dataset in the real on-disk format (``ptr_core.synthetic``: a point arm of
``--state-dim`` joints reaching a goal per episode), ``--episodes`` x ``--length`` steps, state
only; a base with ``config/train/uniform.yaml``'s model size (trained 2 steps: only its frozen
encoder is read). Rows, each stage in the same child process with its peak RSS reset before it
(``/proc/self/clear_refs``):

- ``features``: the frozen encoder's pass over every window;
- ``neighbours``: the nearest-state search ``ptr score`` runs (exact up to ``EXACT_WINDOWS``
  windows or on CUDA, the inverted-file index above), with its recall@k against the exact search
  on ``--recall-queries`` windows;
- ``neighbours, exact``: the exact blocked search on the first ``--exact-windows`` windows,
  extrapolated by ``(N / n)²`` to all of them (what the search costs without the index);
- ``one scorer copy``: one cross-fitted copy trained (its ``training_steps``) and scoring its
  fold (a default ``ptr score`` runs ``folds x rounds`` = 9 of them);
- ``ptr score``: the whole pass with the defaults (``score_datasets``), in its own process.

``--image-episodes`` adds a cameras-only set (``--cameras`` cameras at ``--image-size``²) and its
cost per episode. Usage::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_score.py            # this CPU
    python bench/bench_score.py --device cuda --threads 0                          # a GPU
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_reset() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def _peak_mib() -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    return float('nan')


def _write_data(root: Path, args: argparse.Namespace, *, episodes: int, length: int,
                cameras: int) -> None:
    from ptr_core.synthetic import make_synthetic_dataset

    names = ('front', 'wrist')[:cameras]
    make_synthetic_dataset(root, robot='arm', episodes=episodes, length=length,
                           state_dim=args.state_dim, cameras=names,
                           image_size=(args.image_size, args.image_size),
                           goal_per_episode=True, sources=['expert'], seed=0)


def _train_base(data: Path, out: Path) -> Path:
    from ptr_core.configuration import load_config
    from ptr_core.trainer import train

    cfg = load_config(REPO / 'config/train/uniform.yaml', [
        f'data.datasets=[{str(data)!r}]', f'out_dir={str(out)!r}', 'steps=2', 'batch_size=8',
        'val_every=0', 'save_every=2', 'log_every=1', 'data.val_fraction=0.0',
        'data.num_workers=0', 'data.persistent_workers=false', 'device=cpu', 'threads=1',
    ])
    final = train(cfg).final
    assert final is not None
    return Path(final)


def _timed(rows: list[dict[str, Any]], name: str, fn: Any, **extra: Any) -> Any:
    _peak_reset()
    t0, c0 = time.monotonic(), time.process_time()
    value = fn()
    rows.append({'stage': name, 'wall_s': time.monotonic() - t0,
                 'cpu_s': time.process_time() - c0, 'peak_rss_mib': _peak_mib(), **extra})
    return value


def _row(r: dict[str, Any], per: int = 0) -> None:
    """Print one table row as soon as it is measured (a long run shows what it has)."""
    extra = f' {r["wall_s"] / per:.3f} |' if per else ''
    print(f'| {r["stage"]} | {r["wall_s"]:.1f} | {r["cpu_s"]:.1f} | '
          f'{r["peak_rss_mib"]:.0f} |{extra} {r.get("note", "")} |', flush=True)


def _stages(args: argparse.Namespace, data: str, base: str, out: Any) -> None:
    """The stage rows, measured in this (child) process."""
    import torch

    from ptr_core.data import open_datasets
    from ptr_core.inference import load_policy
    from ptr_core.threads import use_threads
    from ptr_core.weighting.trust import TrustConfig
    from ptr_core.weighting.trust.features import extract_features
    from ptr_core.weighting.trust.scorer import (
        exact_neighbours,
        fit_scorer,
        nearest_state_neighbours,
        score_windows,
        training_steps,
    )

    use_threads(args.threads)
    device = torch.device(args.device)
    config = TrustConfig()
    rows: list[dict[str, Any]] = []
    policy, ckpt = load_policy(base)
    policy.requires_grad_(False)
    datasets = open_datasets([data])
    feats = _timed(rows, 'features', lambda: extract_features(
        policy, ckpt.preprocessor, datasets, chunk_length=policy.chunk_length,
        delta=ckpt.config.data.delta(policy.chunk_length), device=device))
    n = feats.n
    rows[-1]['note'] = f'{n} windows of {len(feats.episodes)} episodes'
    _row(rows[-1])
    nb = _timed(rows, 'neighbours', lambda: nearest_state_neighbours(feats, config.knn))
    gen = torch.Generator().manual_seed(0)
    queries = torch.randperm(n, generator=gen)[: args.recall_queries]
    truth = exact_neighbours(feats, config.knn, queries=queries)
    rows[-1]['note'] = f'recall@{config.knn} {_recall(feats, nb[queries], truth, queries):.3f}'
    _row(rows[-1])
    sub = min(n, args.exact_windows)
    part = _subset(feats, sub)
    _timed(rows, 'neighbours, exact', lambda: exact_neighbours(part, config.knn))
    scale = (n / sub) ** 2
    rows[-1].update(wall_s=rows[-1]['wall_s'] * scale, cpu_s=rows[-1]['cpu_s'] * scale,
                    note=f'measured on {sub} windows, x{scale:.0f} (N/n)^2')
    _row(rows[-1])
    train_rows = torch.arange(n)[feats.has_next & (feats.episode % config.folds != 0)]
    test_rows = torch.arange(n)[feats.has_next & (feats.episode % config.folds == 0)]
    steps = training_steps(config, len(train_rows))

    def one_copy() -> None:
        model = fit_scorer(feats, train_rows, nb, config, seed=0)
        score_windows(model, feats, test_rows, nb, config, seed=7)

    _timed(rows, 'one scorer copy', one_copy, note=f'{steps} steps, {len(train_rows)} windows')
    _row(rows[-1])
    out.put({'rows': rows, 'windows': n, 'episodes': len(feats.episodes)})


def _whole(args: argparse.Namespace, data: str, base: str, name: str, per_episode: bool,
           out: Any) -> None:
    """``ptr score`` with the defaults, measured in this (child) process."""
    from ptr_core.threads import use_threads
    from ptr_core.weighting.trust import score_datasets

    use_threads(args.threads)
    _peak_reset()
    t0, c0 = time.monotonic(), time.process_time()
    res = score_datasets([data], init=base, device=args.device)
    row = {'stage': f'ptr score ({name})', 'wall_s': time.monotonic() - t0,
           'cpu_s': time.process_time() - c0, 'peak_rss_mib': _peak_mib(),
           'note': f'{len(res.trust.episodes)} episodes, {res.trust.scorer["rounds_run"]} '
                   f'round(s) of {res.trust.scorer["folds"]} copies; features '
                   f'{res.seconds["features_s"]:.0f} s, neighbours + scorer '
                   f'{res.seconds["scorer_s"]:.0f} s (wall)'}
    _row(row, per=len(res.trust.episodes) if per_episode else 0)
    out.put({'rows': [row]})


def _subset(feats: Any, n: int) -> Any:
    """The first ``n`` windows (whole episodes but the last)."""
    from dataclasses import replace

    return replace(feats, h=feats.h[:n], action=feats.action[:n],
                   step_mask=feats.step_mask[:n], dim_mask=feats.dim_mask[:n],
                   consequence=feats.consequence[:n], state=feats.state[:n],
                   next_state_delta=feats.next_state_delta[:n],
                   first_action=feats.first_action[:n], episode=feats.episode[:n],
                   frame=feats.frame[:n], has_next=feats.has_next[:n])


def _recall(feats: Any, found: Any, truth: Any, queries: Any) -> float:
    """Share of the found neighbours no farther than the true k-th (ties count as found)."""
    x = feats.state
    d_found = (x[queries][:, None] - x[found]).norm(dim=-1)
    kth = (x[queries][:, None] - x[truth]).norm(dim=-1).max(dim=1, keepdim=True).values
    return float((d_found <= kth * (1 + 1e-5) + 1e-7).double().mean())


def _child(target: Any, *params: Any) -> dict[str, Any]:
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(*params, q))
    p.start()
    while True:  # a child that died (an error, out of memory) must not leave us waiting
        try:
            result: dict[str, Any] = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                msg = f'{target.__name__}: the measuring process exited with {p.exitcode}'
                raise RuntimeError(msg) from None
    p.join()
    return result


def _header(title: str, per: bool = False) -> None:
    print(f'\n{title}')
    per_col = ' wall s / episode |' if per else ''
    head = f'| stage | wall s | CPU s | peak RSS MiB |{per_col} note |'
    print(head)
    print('|' + '---|' * (head.count('|') - 1), flush=True)


def _prepare(root: Path, args: argparse.Namespace, name: str, *, episodes: int, length: int,
             cameras: int) -> Path:
    """The dataset and base under ``root`` (reused when a previous run left them)."""
    data, base = root / name, root / f'{name}_base' / 'final'
    if not (data / 'manifest.json').is_file():
        _write_data(data, args, episodes=episodes, length=length, cameras=cameras)
    if not base.is_dir():
        base = _train_base(data, root / f'{name}_base')
    return base


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--episodes', type=int, default=1000)
    p.add_argument('--length', type=int, default=500)
    p.add_argument('--state-dim', type=int, default=8, help='arm joints + gripper')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=1, help='torch threads (0: ptr default)')
    p.add_argument('--recall-queries', type=int, default=2000)
    p.add_argument('--exact-windows', type=int, default=40_000)
    p.add_argument('--no-whole', action='store_true', help='skip the whole ptr score row')
    p.add_argument('--image-episodes', type=int, default=24)
    p.add_argument('--image-length', type=int, default=100)
    p.add_argument('--cameras', type=int, default=2, choices=(1, 2))
    p.add_argument('--image-size', type=int, default=64)
    p.add_argument('--workdir', help='keep the datasets and bases here (reused when present)')
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='bench_score_') as tmp:
        root = Path(args.workdir or tmp)
        t0 = time.monotonic()
        base = _prepare(root, args, 'state', episodes=args.episodes, length=args.length,
                        cameras=0)
        print(f'dataset {args.episodes} x {args.length} and base ready in '
              f'{time.monotonic() - t0:.0f} s; device {args.device}, threads {args.threads}')
        _header(f'state only: {args.episodes} episodes x {args.length} steps')
        _child(_stages, args, str(root / 'state'), str(base))
        if args.image_episodes:  # before the whole state-only pass: the longest row
            ibase = _prepare(root, args, 'img', episodes=args.image_episodes,
                             length=args.image_length, cameras=args.cameras)
            _header(f'cameras-only: {args.image_episodes} episodes x {args.image_length} '
                    f'steps, {args.cameras} cameras {args.image_size}^2', per=True)
            _child(_whole, args, str(root / 'img'), str(ibase), 'cameras-only, defaults', True)
        if not args.no_whole:
            _header(f'state only, the whole pass: {args.episodes} episodes x {args.length}')
            _child(_whole, args, str(root / 'state'), str(base), 'defaults', False)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
