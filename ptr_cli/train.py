"""Train a diffusion or flow-matching policy (uniform or PTR sample weights).

Examples:
  ptr train --config config/train/debug.yaml --dataset data/pick
  ptr train --config config/train/uniform.yaml --set optim.lr=3e-4 --set steps=50000
  ptr train --config config/train/ptr.yaml --init runs/pretrain/final --dataset data/robotB
  ptr train --config config/train/uniform.yaml --resume          # continue out_dir exactly
  ptr train --config config/train/trust.yaml --resume --trust new.trust.json --allow-change
  ptr train --config config/train/uniform.yaml --init runs/base/final --dataset data/mixed \
      --trust data/mixed.trust.json                               # trust from `ptr score`
  torchrun --nproc-per-node 4 -m ptr_cli.main train --config config/train/uniform.yaml
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from tqdm import tqdm

from ptr_core.configuration import Override, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--config', required=True, help='training config YAML (config/train/)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='override a config key, e.g. optim.lr=3e-4')
    parser.add_argument('--dataset', action='append', default=[], metavar='PATH',
                        help='dataset directory (repeatable; replaces data.datasets)')
    parser.add_argument('--out', help='run directory (overrides out_dir)')
    parser.add_argument('--init', metavar='CHECKPOINT',
                        help="post-train from this checkpoint's weights")
    parser.add_argument('--reinit-mismatched', action='store_true',
                        help='with --init: re-initialize tensors whose shapes do not fit')
    parser.add_argument('--trust', metavar='TRUST',
                        help='trust file from `ptr score`: episodes are sampled by their trust '
                             '(sets data.trust; --set data.trust_apply=loss for loss weights, '
                             'data.trust_level=frame for per-frame trust)')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in out_dir from its latest checkpoint')
    parser.add_argument('--allow-change', action='store_true',
                        help='with --resume: continue even though the datasets, the weighter or '
                             'the trust file differ from the run so far (recorded in run.json)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    from ptr_core.errors import ConfigError
    from ptr_core.trainer import train

    if args.allow_change and not args.resume:
        msg = '--allow-change: only with --resume (a new run has nothing to change)'
        raise ConfigError(msg)
    # Paths go into the config as the strings they are, never through YAML text.
    overrides: list[Override] = list(args.overrides)
    if args.dataset:
        overrides.append(('data.datasets', list(args.dataset)))
    if args.reinit_mismatched:
        overrides.append(('reinit_mismatched', True))
    if args.out:
        overrides.append(('out_dir', args.out))
    if args.trust:  # first, so that --set data.trust_* still applies on top
        overrides.insert(0, ('data.trust', args.trust))
    config = load_config(args.config, overrides)
    rank = int(os.environ.get('RANK', '0'))
    bar = None
    if rank == 0 and not args.no_progress:
        bar = tqdm(total=config.steps, desc='train', unit='step', dynamic_ncols=True)

    def progress(step: int, metrics: Mapping[str, float] | None) -> None:
        if bar is None:
            return
        bar.n = step
        if metrics is not None:
            shown = {'loss': f'{metrics["loss"]:.4f}',
                     'samples/s': f'{metrics["samples_per_s"]:.0f}'}
            if 'val/action_mse' in metrics:
                shown['val_mse'] = f'{metrics["val/action_mse"]:.4f}'
            bar.set_postfix(shown, refresh=False)
        bar.refresh()

    try:
        result = train(config, init=args.init, resume=args.resume,
                       allow_change=args.allow_change, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    if result.final is not None:
        print(f'final checkpoint: {result.final}')
    return 0
