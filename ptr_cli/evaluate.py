"""Evaluate a checkpoint offline on a dataset: action error per robot, inference time per chunk.

Examples:
  ptr eval runs/uniform/final data/pick
  ptr eval runs/ptr/final data/pick data/place --steps 20 --json eval.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('checkpoint', help='checkpoint directory (e.g. runs/x/final)')
    parser.add_argument('dataset', nargs='+', help='dataset directory (one or more)')
    parser.add_argument('--steps', type=int, help='sampling steps (default: from the config)')
    parser.add_argument('--max-windows', type=int, default=256,
                        help='windows evaluated, evenly spaced (default 256)')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--device', default='cpu', help='cpu | cuda | cuda:N')
    parser.add_argument('--no-ema', action='store_true', help='use the raw, not the EMA weights')
    parser.add_argument('--json', type=Path, help='also write the report as JSON here')


def run(args: argparse.Namespace) -> int:
    from ptr_core.checkpoint import write_file_atomic
    from ptr_core.errors import ConfigError
    from ptr_core.evaluation import evaluate

    for flag, value in (('--steps', args.steps), ('--max-windows', args.max_windows),
                        ('--batch-size', args.batch_size)):
        if value is not None and value < 1:
            msg = f'{flag}: {value} is invalid; expected an integer >= 1'
            raise ConfigError(msg)
    report = evaluate(
        args.checkpoint, args.dataset, max_windows=args.max_windows,
        batch_size=args.batch_size, steps=args.steps, device=args.device,
        use_ema=not args.no_ema,
    )
    print(f'checkpoint {report.checkpoint}  ({report.steps} sampling steps)')
    print(f'{"robot":<20} {"windows":>8} {"mse (norm)":>11} {"mae":>10} {"rmse":>10}')
    for r in report.robots:
        print(f'{r.robot:<20} {r.windows:>8} {r.mse_normalized:>11.5f} {r.mae:>10.5f} '
              f'{r.rmse:>10.5f}')
    print(f'inference: {report.infer_ms_median:.2f} ms/chunk median, '
          f'{report.infer_ms_p90:.2f} ms p90 over {report.infer_chunks} chunks (batch 1)')
    if args.json is not None:
        write_file_atomic(args.json, json.dumps(report.to_json(), indent=1))
    return 0
