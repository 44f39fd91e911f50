"""Export a ptr dataset to another format (LeRobot v3.0), with its sync reports and trust.

The LeRobot export carries state, action, the cameras (color as mp4 via PyAV, depth as
16-bit PNG), the validity masks, each episode's sync report and, with --trust, the per-episode
and per-frame trust, in documented ptr columns (docs/lerobot.md). It is written to a temp
folder beside --out and renamed into place when complete. An episode with a camera invalid
(zero images) at more than --max-invalid of its steps (default 0.5) is left out, one warning
line each: a LeRobot consumer would train on its black frames.

example:
  ptr export data/ur5e --format lerobot --out exports/ur5e_lerobot --trust data/ur5e.trust.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from bag_tools.dataset import Dataset
from bag_tools.lerobot.exporter import MAX_INVALID_SHARE, ExportConfig, export_lerobot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('dataset', type=Path, metavar='DATASET', help='ptr dataset directory')
    parser.add_argument('--format', choices=['lerobot'], default='lerobot',
                        help='output format (default: %(default)s, LeRobot v3.0)')
    parser.add_argument('--out', '-o', type=Path, required=True,
                        help='new folder to write (must not exist, nor be a symlink)')
    parser.add_argument('--robot', help='robot to export when the dataset holds several')
    parser.add_argument('--trust', type=Path,
                        help='trust file (ptr score) to carry as ptr/trust and ptr.trust columns')
    parser.add_argument('--vcodec', default='libx264',
                        help='video encoder: libx264 (default), libsvtav1, libx265, mpeg4')
    parser.add_argument('--crf', type=int, default=18,
                        help='video quality, lower is better (default: %(default)s)')
    parser.add_argument('--max-invalid', type=float, metavar='FRACTION',
                        default=MAX_INVALID_SHARE,
                        help='leave out an episode with a camera invalid (black frames) at more '
                        'than this share of its steps (default: %(default)s; 1 keeps all)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run(args: argparse.Namespace) -> int:
    ds = Dataset.open(args.dataset)
    total = sum(1 for e in ds.manifest['episodes'] if args.robot in (None, e['robot']))
    bar = tqdm(total=total, unit='episode', disable=args.no_progress or None, file=sys.stderr,
               dynamic_ncols=True)
    try:
        out = export_lerobot(args.dataset, args.out, robot=args.robot, trust=args.trust,
                             config=ExportConfig(vcodec=args.vcodec, crf=args.crf,
                                                 max_invalid=args.max_invalid),
                             progress=lambda _: bar.update(1))
    finally:
        bar.close()
    info = json.loads((out / 'meta' / 'info.json').read_text())  # what was written
    written = int(info['total_episodes'])
    left = f', {total - written} left out (invalid cameras)' if written < total else ''
    print(f'ptr export: {written} episode(s), {info["total_frames"]} frames -> {out} (LeRobot '
          f'v3.0{", with trust" if args.trust else ""}){left}')
    return 0
