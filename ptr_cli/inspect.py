"""Summarize bags (duration; per topic type, count, rate, header stamps) or ptr datasets.

Takes what `ptr ingest` takes: ROS 1 .bag files, rosbag2 folders, bare .db3 and .mcap files and
folders of bags (searched recursively, each bag summarized on its own), plus dataset
directories written by `ptr ingest` (summarized by `bag_tools.dataset_summary`). A topic that
carries several message types lists them all. Exit 2 when a path is not a bag or dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bag_tools.errors import BagToolsError
from bag_tools.ingest import find_bags
from bag_tools.inspect import BagSummary, summarize_bag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('paths', nargs='+', type=Path, metavar='PATH',
                        help='bag file, rosbag2 folder, folder of bags or ptr dataset directory')
    parser.add_argument('--json', action='store_true', help='print JSON instead of a table')


def _is_dataset(path: Path) -> bool:
    return path.is_dir() and (path / 'manifest.json').is_file()


def _print_bag(summary: BagSummary) -> None:
    print(f'{summary["path"]}')
    print(f'  duration: {summary["duration_s"]:.3f} s   messages: {summary["messages"]}')
    if not summary['topics']:
        print('  (no topics)')
        return
    types = [' + '.join(t['types']) for t in summary['topics']]
    width = max(len(t['topic']) for t in summary['topics'])
    twidth = max(len(t) for t in types)
    print(f'  {"topic":<{width}}  {"type":<{twidth}}  {"count":>7}  {"rate Hz":>8}  header')
    for t, shown in zip(summary['topics'], types):
        stamp = 'yes' if t['header_stamps'] else 'no'
        print(f'  {t["topic"]:<{width}}  {shown:<{twidth}}  {t["count"]:>7}  '
              f'{t["rate_hz"]:>8.2f}  {stamp}')


def expand(paths: list[Path]) -> list[Path]:
    """Datasets as given; everything else as ``ptr ingest`` finds bags in it."""
    out: list[Path] = []
    for path in paths:
        out += [path] if _is_dataset(path) else find_bags([path])
    return list(dict.fromkeys(out))


def _run(args: argparse.Namespace) -> int:
    results: list[dict[str, Any]] = []
    failures = 0
    paths = expand(list(args.paths))
    for path in paths:
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
        print(json.dumps(results if len(paths) > 1 else (results[0] if results else {}),
                         indent=1))
    sys.stdout.flush()
    return 2 if failures else 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BrokenPipeError:  # `ptr inspect --json | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
