"""Write a dataset's report page: one static HTML file to open from disk (no server, no network).

Shows every episode (robot, task, source, frames, duration, worst sync offset, held, dropped and
invalid steps, trust) in a table that sorts and filters; thumbnails per camera, state and
action plots per episode; trust per episode and per source; and the episodes to look at first
(low trust, bad sync). Given a checkpoint or training-run folder, it adds the run's training
curves and diagnostics (from its metrics.jsonl) and the datasets it trained on. Given a policy
node's cadence log (its cadence_log parameter), it adds the node's timing per window: a table,
plots over time, and the windows whose longest gap outlasted the executed horizon or that had
overruns.

example:
  ptr report data/ur5e --trust data/ur5e.trust.json --out reports/ur5e
  ptr report runs/ptr/final --out reports/run
  ptr report runs/ptr/final --cadence logs/cadence.jsonl --out reports/run
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bag_tools.dataset import MANIFEST
from ptr_cli.report_page import ReportError, find_run, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('paths', nargs='+', type=Path, metavar='DATASET_OR_CHECKPOINT',
                        help='ptr dataset folder(s), or one checkpoint / training-run folder')
    parser.add_argument('--trust', type=Path, help='trust file (ptr score) for the dataset(s)')
    parser.add_argument('--cadence', type=Path, metavar='FILE',
                        help="a policy node's cadence log (its cadence_log parameter): adds "
                        'the node cadence section')
    parser.add_argument('--out', '-o', type=Path, required=True,
                        help='folder to write index.html into (an index.html already there is '
                        'replaced only when ptr report wrote it)')
    parser.add_argument('--max-details', type=int, default=200,
                        help='episodes with plots and thumbnails (default: %(default)s; the '
                        'flagged ones always)')


def run(args: argparse.Namespace) -> int:
    datasets = [p for p in args.paths if (p / MANIFEST).is_file()]
    runs = [p for p in args.paths if p not in datasets]
    if len(runs) > 1:
        msg = f'{runs[1]}: one checkpoint per report (or it is not a dataset: no {MANIFEST})'
        raise ReportError(msg)
    run_path = runs[0] if runs else None
    if run_path is not None and find_run(run_path) is None:
        msg = (f'{run_path}: neither a ptr dataset (no {MANIFEST}) nor a training run (no '
               'metrics.jsonl)')
        raise ReportError(msg)
    page = write_report(args.out, datasets, trust=args.trust, run=run_path,
                        cadence=args.cadence, max_details=args.max_details)
    size = page.stat().st_size / 1e6
    print(f'ptr report: {page} ({size:.1f} MB); open it in a browser')
    return 0
