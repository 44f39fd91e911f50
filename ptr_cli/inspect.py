"""Summarize bags (duration; per topic type, count, rate, header stamps) or ptr datasets.

Accepts ROS 1 .bag files, rosbag2 folders, bare .db3 and .mcap files, and dataset directories
written by `ptr ingest` (those are summarized by `bag_tools.dataset_summary`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bag_tools.errors import BagToolsError
from bag_tools.inspect import BagSummary, summarize_bag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('paths', nargs='+', type=Path, metavar='PATH',
                        help='bag file, rosbag2 folder or ptr dataset directory')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / 'manifest.json').is_file()


def _print_bag(summary: BagSummary) -> None:
    print(f'{summary["path"]}')
    print(f'  duration: {summary["duration_s"]:.3f} s   messages: {summary["messages"]}')
    if not summary['topics']:
        print('  (no topics)')
        return
    width = max(len(t['topic']) for t in summary['topics'])
    twidth = max(len(t['type']) for t in summary['topics'])
    print(f'  {"topic":<{width}}  {"type":<{twidth}}  {"count":>7}  {"rate Hz":>8}  header')
    for t in summary['topics']:
        stamp = 'yes' if t['header_stamps'] else 'no'
        print(f'  {t["topic"]:<{width}}  {t["type"]:<{twidth}}  {t["count"]:>7}  '
              f'{t["rate_hz"]:>8.2f}  {stamp}')


def run(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failures = 0
    for path in args.paths:
        try:
            if _is_dataset(path):
                from bag_tools.dataset_summary import format_dataset, summarize_dataset

                ds = summarize_dataset(path)
                results.append({'kind': 'dataset', **ds})
                if not args.json:
                    print(format_dataset(ds))
            else:
                summary = summarize_bag(path)
                results.append({'kind': 'bag', **summary})
                if not args.json:
                    _print_bag(summary)
        except BagToolsError as err:
            failures += 1
            print(f'ptr inspect: error: {err}', file=sys.stderr)
    if args.json:
        print(json.dumps(results if len(args.paths) > 1 else (results[0] if results else {}),
                         indent=1))
    return 2 if failures else 0
