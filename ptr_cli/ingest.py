"""Ingest rosbags into a training dataset with a robot profile (resumable, parallel).

Reads ROS 1 .bag files, rosbag2 folders, bare .db3 and .mcap files (folders holding several
bags are searched), and LeRobot v2.1/v3.0 dataset folders (docs/lerobot.md). Each bag becomes
one or more episodes on the profile's control-rate grid; a bag already in the dataset (same
robot and content hash) is skipped, so re-running after an interruption resumes. A bad bag fails
with one line and the others carry on; the exit code is 1 when any bag failed. One writer per
dataset: a second `ptr ingest` into the same --out fails at once (exit 2), as does a full or
read-only disk (one line naming the folder; what landed stays valid).

example:
  ptr ingest bags/*.mcap --profile config/robots/ur5e_two_cam.yaml --out data/ur5e -j 4
  ptr ingest lerobot/unitree_g1 --episodes 1,2 --out data/g1
  ptr ingest /shared/bags --profile robot.yaml --out /shared/data/fleet --ray head:6379
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from tqdm import tqdm

from bag_tools.dataset import MANIFEST, Dataset
from bag_tools.dataset_summary import format_sync, worst_sync
from bag_tools.errors import BagOpenError, ProfileError
from bag_tools.ingest import BagResult, BagStatus, IngestResult, Runner, find_bags, ingest
from bag_tools.lerobot import is_lerobot_dataset
from bag_tools.lock import LOCK_NAME
from bag_tools.profile import load_profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bags', nargs='+', type=Path, metavar='BAG',
                        help='bag file, rosbag2 folder, or a folder of bags')
    parser.add_argument('--profile', '-p', type=Path,
                        help='robot profile YAML (config/robots/*.yaml; required for bags); for '
                        'LeRobot folders a LeRobot profile (docs/lerobot.md), default: derived')
    parser.add_argument('--out', '-o', type=Path, required=True,
                        help='dataset directory (created, or extended when it exists)')
    parser.add_argument('--workers', '-j', type=int, default=min(4, os.cpu_count() or 1),
                        help='worker processes, one bag each (default: %(default)s)')
    parser.add_argument('--episodes', metavar='LIST',
                        help='LeRobot folders only: episode indices to import, e.g. 1,2 or 0-9')
    parser.add_argument('--salvage', action='store_true',
                        help='ingest the readable part of truncated bags (a crashed recorder); '
                        'one warning per bag says what was lost')
    parser.add_argument('--max-invalid', type=_fraction, metavar='FRACTION',
                        help='fail a bag (or LeRobot episode) with a stream invalid at more '
                        'than this share of its grid steps, e.g. 0.5 (nothing of it written); '
                        'without it such streams are only warned about')
    parser.add_argument('--ray', nargs='?', const='', metavar='ADDRESS',
                        help='convert each bag / LeRobot episode as a Ray task: on the cluster '
                        'whose head is ADDRESS (host:port, or auto), or without one on a local '
                        'Ray instance of -j CPUs; inputs and --out on a path every node mounts '
                        '(docs/ingest.md)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        msg = f'{text!r} is not a share between 0 and 1'
        raise argparse.ArgumentTypeError(msg)
    return value


def runner_of(args: argparse.Namespace) -> Runner | None:
    """``--ray [ADDRESS]``: Ray tasks (Ray imported only then); otherwise the local default."""
    if args.ray is None:
        return None
    from bag_tools.fleet import ray_runner

    return ray_runner(args.ray or None, workers=max(args.workers, 1))


def _summary(result: IngestResult, printed: frozenset[str] | set[str] = frozenset()) -> None:
    ok, skipped, failed = (result.count(s) for s in BagStatus)
    print(f'ptr ingest: {ok} bag(s) ingested, {skipped} skipped, {failed} failed; '
          f'{sum(len(b.episodes) for b in result.bags)} episode(s), {result.frames} frames '
          f'-> {result.out}')
    if not (result.out / MANIFEST).is_file():  # nothing landed, so nothing was created
        print(f'nothing written: {result.out} was not created')
        _print_failures(result, printed)
        return
    ds = Dataset.open(result.out)
    new = {i for b in result.bags for i in b.episodes}
    sync = worst_sync(ds.episode(i) for i in ds.episode_ids if i in new)
    if sync:
        print('worst sync figures of the new episodes:')
        print('\n'.join(format_sync(sync)))
    print(f'dataset: {len(ds)} episode(s), '
          f'{sum(e["length"] for e in ds.manifest["episodes"])} frames, robots '
          f'{", ".join(sorted(ds.manifest["robots"]))}')
    _print_failures(result, printed)


def _print_failures(result: IngestResult, printed: frozenset[str] | set[str] = frozenset()
                    ) -> None:
    """One line per failed bag: those the progress callback has not printed yet."""
    for b in result.bags:
        if b.status is BagStatus.FAILED and b.path not in printed:
            print(f'  FAILED {b.reason}', file=sys.stderr)


class _FailureLines(logging.Filter):
    """Drop bag_tools.ingest's own line per failed bag: the progress callback prints it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == 'bag_tools.ingest' and record.msg == '%s'
                    and record.levelno == logging.WARNING)


def check_paths(paths: list[Path]) -> None:
    """A path that does not exist is a usage error (exit 2), before anything is read or made."""
    for path in paths:
        if not path.exists():
            msg = f'{path}: no such file or directory'
            raise BagOpenError(msg)


def run(args: argparse.Namespace) -> int:
    if any(is_lerobot_dataset(p) for p in args.bags):
        from ptr_cli.lerobot_ingest import run_lerobot

        out = Path(args.out)
        created = not out.exists()
        try:
            return run_lerobot(args, runner_of(args))  # the driver takes the writer lock
        finally:  # a refused import that made --out leaves nothing, not even the lock file
            if created and out.is_dir() and {p.name for p in out.iterdir()} <= {LOCK_NAME}:
                (out / LOCK_NAME).unlink(missing_ok=True)
                out.rmdir()
    if args.profile is None:
        msg = '--profile: required for bags (a robot profile, config/robots/*.yaml)'
        raise ProfileError(msg)
    if args.episodes:
        msg = '--episodes: selects episodes of LeRobot folders; bags are ingested whole'
        raise ProfileError(msg)
    check_paths(args.bags)
    profile = load_profile(args.profile)
    total = len(find_bags(args.bags))
    bar = tqdm(total=total, unit='bag', disable=args.no_progress or None, file=sys.stderr,
               dynamic_ncols=True)

    printed: set[str] = set()

    def progress(res: BagResult) -> None:
        bar.update(1)
        bar.set_postfix_str(f'{Path(res.path).name}: {res.status.value}')
        if res.status is BagStatus.FAILED:
            bar.write(f'failed: {res.reason}', file=sys.stderr)
            printed.add(res.path)

    quiet = _FailureLines()
    logger = logging.getLogger('bag_tools.ingest')
    logger.addFilter(quiet)
    try:
        result = ingest(args.bags, profile, args.out, workers=args.workers, progress=progress,
                        salvage=args.salvage, max_invalid=args.max_invalid,
                        runner=runner_of(args))
    finally:
        bar.close()
        logger.removeFilter(quiet)
    _summary(result, printed)
    return 0 if result.ok else 1
