"""The one-command demo: mixed-quality Meta-World data -> ingest -> uniform vs PTR -> simulator.

With no arguments it: checks the simulator is installed (scripts/env.sh installs it); records a
small mixed-quality set of ROS 2 bags (expert, noisy, recovery, random/shuffled/delayed labels, two
recording setups); ingests them; post-trains a policy with uniform weights and with PTR; evaluates
both in the simulator on held-out goals; shows where PTR put its weight per source; then, when
rclpy is available, runs the policy node against the simulated arm over ROS 2 for a few seconds.
It ends with a results table, the paths of the plots and checkpoint, and last its report page
(ptr report: the dataset, the trust and the training curves). About 10 minutes on a 2-core
CPU; --tiny runs every stage in about a minute (numbers then mean nothing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ptr_sim.demo import DemoResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--tiny', action='store_true',
                        help='a minute-long run of every stage (CI); results are not meaningful')
    parser.add_argument('--out', default='runs/demo', help='output folder (default: %(default)s)')
    parser.add_argument('--ros-seconds', type=float, default=8.0,
                        help='how long the policy node drives the simulated arm (default: '
                        '%(default)s)')
    parser.add_argument('--no-ros', action='store_true', help='skip the ROS 2 stage')
    parser.add_argument('--no-install', action='store_true',
                        help=argparse.SUPPRESS)  # accepted for old scripts: nothing installs
    parser.add_argument('--fresh', action='store_true',
                        help='delete OUT first instead of resuming what is there')


def run(args: argparse.Namespace) -> int:
    from ptr_sim.benchmark import markdown
    from ptr_sim.demo import DemoOptions, run_demo

    t0 = time.monotonic()

    def say(line: str) -> None:
        print(f'[{time.monotonic() - t0:6.0f} s] {line}', flush=True)

    options = DemoOptions(tiny=args.tiny, out=Path(args.out), ros_seconds=args.ros_seconds,
                          ros=not args.no_ros, fresh=args.fresh)
    result = run_demo(options, say)
    print()
    print(markdown(result.summary))
    say('done')
    _print_results(result, args.ros_seconds)
    return 0


def _print_results(result: DemoResult, ros_seconds: float) -> None:
    out, ros, checkpoint = result.out, result.ros, result.checkpoint
    print()
    print('| method | success (held-out goals) |')
    print('|---|---|')
    for t in result.summary['table']:
        print(f'| {t["method"]} ({t["head"]}) | {t["success_mean"]:.2f} |')
    if ros is not None:
        print(f'| policy_node over ROS 2 ({ros_seconds:g} s) | '
              f'{ros["successes"]}/{ros["episodes"]} episodes |')
    print()
    print(f'results:    {out / "results.md"}')
    print(f'plots:      {out / "success.png"}, {out / "trust_by_episode.png"} (trust per '
          'episode, by source)')
    if checkpoint is not None:
        print(f'checkpoint: {checkpoint}  (serve it: ros2 run ptr policy_node --ros-args '
              f'-p checkpoint:={checkpoint} -p robot:={result.robot})')
        from bag_tools.report import write_report  # the dataset + training report page

        print(f'report:     {write_report(out / "report", run=checkpoint)}  (open in a browser)')
