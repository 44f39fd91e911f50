"""Benchmark PTR against uniform post-training on mixed-quality Meta-World data, end to end.

record (Meta-World experts -> MCAP bags, known-quality sources) -> ptr ingest -> pretrain a base
policy on other tasks -> post-train it with uniform and PTR weights (each head, several seeds) ->
success in the simulator on held-out goals -> OUT/results.md, results.json and plots
(success.png, weights_by_source.png, diagnostics.png). Re-running with the same --out resumes
(what was made with other settings is moved to OUT/runs/.stale and made again).

Presets (ptr_sim/configs/): tiny (a minute; CI), quick (minutes), full (about 2 h on a 2-core
CPU), ablations (issue 11's ablation and baseline arms at full scale, one seed), floor (the
trust floor and the oracle trust, one seed), mild (milder degradations; the calibration's
anchor, one seed), hard (50% poor but correctly labelled operators), minority (10% experts),
cameras_cpu (cameras only, 64x64, this CPU; not yet run), gpu (larger image policies, more
seeds). --set split=test for reported tables. E.g.
  ptr benchmark --preset quick --set seeds=[0,1,2] --set posttrain_steps=800
"""

from __future__ import annotations

import argparse
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--preset', default='quick',
                        help='preset name (tiny, quick, full, ablations, floor, mild, hard, '
                        'minority, cameras_cpu, gpu) or a YAML file (default: %(default)s)')
    parser.add_argument('--out', default=None, help='output folder (default: runs/bench_<preset>)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a benchmark config key (repeatable)')
    parser.add_argument('--report', action='store_true',
                        help='only write the report from the cells finished so far in OUT')
    parser.add_argument('--workers', type=int, default=None,
                        help="parallel training processes (default: the preset's)")
    parser.add_argument('--device', default=None, metavar='DEVICE',
                        help='cpu | cuda | cuda:N | auto: where every training run and trust '
                        "scoring runs (default: the preset's; sets device=)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ptr_sim.benchmark import (
        cells,
        collect_results,
        markdown,
        run_benchmark,
        summarize,
        write_report,
    )
    from ptr_sim.benchmark_config import load_benchmark_config

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f'workers={args.workers}')
    if args.device is not None:
        overrides.append(f'device={args.device}')
    cfg = load_benchmark_config(args.preset, overrides)
    out = Path(args.out or f'runs/bench_{cfg.name}')
    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f'[{time.monotonic() - t0:6.0f} s] {line}', flush=True)

    if args.report:
        results = collect_results(cfg, out)
        summary = summarize(cfg, results)
        write_report(summary, out)
        print(markdown(summary))
        print(f'{len(results)} of {len(cells(cfg))} cells finished; report: {out / "results.md"}')
        return 0
    say(f'ptr benchmark {cfg.name} -> {out}')
    summary = run_benchmark(cfg, out, say=say)
    print()
    print(markdown(summary))
    print(f'results: {out / "results.md"}  plots: {out / "success.png"}, '
          f'{out / "weights_by_source.png"}, {out / "diagnostics.png"}')
    return 0
