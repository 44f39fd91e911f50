"""Score every episode's trust before training (cross-fitted, on a base policy's frozen encoder).

Examples:
  ptr score data/mixed --init runs/base/final                  # -> data/mixed.trust.json
  ptr score data/a data/b --init runs/base/final --out trust.json --set folds=5
  ptr score data/mixed --init runs/base/final --set second_signal=bc_loss
  ptr score data/fleet --init runs/base/final --device cuda    # encoder, neighbours, scorer
  ptr train --config config/train/uniform.yaml --dataset data/mixed --trust data/mixed.trust.json

Prints the scoring pass time, the mean trust per ``ptr.source`` tag and, when the episodes carry
an ``expert`` tag, the AUROC (expert vs each other source) of the trust and of every baseline.
Warns when it refuses to split episodes whose scores carry no signal (every trust stays 1) and
when the trust drops more than half of the episodes. --out and --report replace only a previous
trust file / score report, never a dataset's files, and are checked before the pass.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('datasets', nargs='+', metavar='DATASET', help='dataset directories')
    parser.add_argument('--init', required=True, metavar='CHECKPOINT',
                        help='the base policy whose frozen encoder the scorer reads')
    parser.add_argument('--out', metavar='TRUST',
                        help='trust file to write (default: <first dataset>.trust.json beside it)')
    parser.add_argument('--set', dest='overrides', action='append', default=[],
                        metavar='KEY=VALUE', help='scorer option, e.g. folds=5 (docs/ptr.md)')
    parser.add_argument('--report', metavar='JSON', help='also write the AUROCs and timings here')
    parser.add_argument('--threads', type=int, default=0, metavar='N',
                        help='torch CPU threads (0: half the cores, fast on a busy machine)')
    parser.add_argument('--device', default='auto', metavar='DEVICE',
                        help='where the encoder pass, the neighbour search and the scorer run: '
                             'cpu | cuda | cuda:N | auto (cuda when there is one)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def parse_overrides(items: list[str]) -> dict[str, Any]:
    import yaml

    from ptr_core.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or not key:
            msg = f'--set {item!r}: expected KEY=VALUE'
            raise ConfigError(msg)
        out[key.strip()] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from bag_tools.trust import default_trust_path, write_score_report, write_trust
    from ptr_core.devices import resolve_device
    from ptr_core.errors import ConfigError
    from ptr_core.threads import use_threads
    from ptr_core.weighting.trust import TrustConfig, score_datasets

    config = TrustConfig.from_mapping(parse_overrides(args.overrides))
    if args.threads < 0:
        msg = f'--threads: {args.threads} is invalid; expected an integer >= 0'
        raise ConfigError(msg)
    use_threads(args.threads)
    device = resolve_device(args.device, what='--device')
    out = Path(args.out) if args.out else default_trust_path(args.datasets[0])
    report = Path(args.report) if args.report else None
    check_outputs(out, report, args.datasets)  # before the pass, not after it
    bars: dict[str, Any] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if args.no_progress:
            return
        bar = bars.get(stage)
        if bar is None:
            unit = 'window' if stage == 'features' else 'copy'
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, dynamic_ncols=True)
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    t0 = time.monotonic()
    result = score_datasets(args.datasets, init=args.init, config=config, progress=progress,
                            device=device)
    for bar in bars.values():
        bar.close()
    write_trust(out, result.trust)
    elapsed = time.monotonic() - t0
    print(f'scored {len(result.trust.episodes)} episodes ({result.windows} windows) in '
          f'{elapsed:.1f} s on {device} (features {result.seconds["features_s"]:.1f} s, scorer '
          f'{result.seconds["scorer_s"]:.1f} s, probes {result.seconds["probes_s"]:.1f} s)')
    print(f'trust file: {out}')
    summary = _print_summary(result)
    if report is not None:
        write_score_report(report, {
            'trust_file': str(out), 'seconds': result.seconds, 'scoring_s': elapsed,
            'windows': result.windows, **summary, 'mixtures': result.mixtures,
            'warnings': result.warnings,
        })
    return 0


def check_outputs(out: Path, report: Path | None, datasets: list[str]) -> None:
    """Refuse, in one line, a ``--out``/``--report`` that may not or cannot be written (not a
    previous trust file/report, inside a dataset, a link, a folder, read-only, an unwritable
    folder) before the scoring pass."""
    from bag_tools.trust import REPORT_SCHEMA, SCHEMA, TrustError, check_destination

    check_destination(out, schema=SCHEMA, datasets=datasets, probe=True)
    if report is None:
        return
    if report.parent.resolve() / report.name == out.parent.resolve() / out.name:
        msg = f'{report}: --report names the --out trust file too; give it another path'
        raise TrustError(msg)
    check_destination(report, schema=REPORT_SCHEMA, datasets=datasets, probe=True)


def _print_summary(result: Any) -> dict[str, Any]:
    """Print the mean trust per source and the AUROC table; return them for the report."""
    by_source: dict[str, list[float]] = {}
    for src, ep in zip(result.sources, result.trust.episodes):
        by_source.setdefault(src or '(untagged)', []).append(ep.trust)
    print('mean trust per source: ' + ', '.join(
        f'{s} {sum(v) / len(v):.2f} (n={len(v)})' for s, v in sorted(by_source.items())))
    table = result.aurocs()
    controlled = result.aurocs(length_controlled=True)
    if table:
        sources = sorted({s for row in table.values() for s in row})
        print('episode AUROC, expert vs source (length-controlled in brackets):')
        print(f'  {"signal":<18}' + ''.join(f'{s:>22}' for s in sources))
        for name, row in table.items():
            ctrl = controlled.get(name, {})  # none for the (saturated) trust itself
            print(f'  {name:<18}' + ''.join(
                f'{row[s]:>13.2f} [{ctrl[s]:.2f}]' if s in ctrl else f'{row[s]:>13.2f}       '
                for s in sources))
    return {'auroc': table, 'auroc_length_controlled': controlled,
            'mean_trust_by_source': {s: sum(v) / len(v) for s, v in by_source.items()}}
