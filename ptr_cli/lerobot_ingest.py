"""``ptr ingest`` for LeRobot dataset folders (``ptr_cli.ingest`` hands them over here)."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from bag_tools.dataset import Dataset
from bag_tools.errors import ProfileError
from bag_tools.ingest import BagResult, BagStatus, Runner
from bag_tools.lerobot import (
    LeRobotProfile,
    is_lerobot_dataset,
    is_lerobot_profile_file,
    load_lerobot_profile,
)
from bag_tools.lerobot.importer import import_lerobot, parse_episodes


def run_lerobot(args: argparse.Namespace, runner: Runner | None = None) -> int:
    folders = [p for p in args.bags if is_lerobot_dataset(p)]
    others = [str(p) for p in args.bags if not is_lerobot_dataset(p)]
    if others:
        msg = (f'{others[0]}: not a LeRobot folder; give bags and LeRobot folders to separate '
               '`ptr ingest` calls')
        raise ProfileError(msg)
    profile: LeRobotProfile | None = None
    if args.profile is not None:
        if not is_lerobot_profile_file(args.profile):
            msg = (f'{args.profile}: a robot profile for bags; LeRobot folders take a LeRobot '
                   'profile (`format: lerobot`, docs/lerobot.md) or none (derived from info.json)')
            raise ProfileError(msg)
        profile = load_lerobot_profile(args.profile)
    episodes = parse_episodes(args.episodes) if args.episodes else None
    failed = 0
    for folder in folders:
        bar = tqdm(unit='episode', disable=args.no_progress or None, file=sys.stderr,
                   dynamic_ncols=True, desc=folder.name)

        def progress(res: BagResult, bar: tqdm = bar) -> None:  # type: ignore[type-arg]
            bar.update(1)
            bar.set_postfix_str(f'{res.path.rsplit("#", 1)[-1]}: {res.status.value}')

        try:
            result = import_lerobot(folder, profile, args.out, episodes=episodes,
                                    progress=progress, max_invalid=args.max_invalid,
                                    runner=runner)
        finally:
            bar.close()
        ok, skipped, bad = (result.count(s) for s in BagStatus)
        failed += bad
        print(f'ptr ingest: {folder}: {ok} episode(s) imported, {skipped} skipped, {bad} failed; '
              f'{result.frames} frames -> {args.out}')
        for b in result.bags:
            if b.status is BagStatus.FAILED:
                print(f'  FAILED {b.reason}', file=sys.stderr)
    if (args.out / 'manifest.json').is_file():
        ds = Dataset.open(args.out)
        print(f'dataset: {len(ds)} episode(s), '
              f'{sum(e["length"] for e in ds.manifest["episodes"])} frames, robots '
              f'{", ".join(sorted(ds.manifest["robots"]))}')
    return 0 if failed == 0 else 1
