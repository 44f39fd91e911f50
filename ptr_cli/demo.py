"""The one-command demo: mixed-quality Meta-World data -> ingest -> uniform vs trust -> simulator.

With no arguments it: checks the simulator is installed (scripts/env.sh installs it); records a
mixed-quality push set (expert, noisy, recovery, random/shuffled/delayed labels, two recording
setups) as ROS 2 bags; ingests them; warm-starts one policy on them; post-trains it uniformly
and, after scoring every episode's trust (ptr score), with episodes sampled by trust; evaluates
both in the simulator on held-out goals and prints the paired difference with its interval and
the trust per source; then, when rclpy is available, serves the trust checkpoint through the
policy node against the simulated arm over ROS 2. It ends with a results table, the paths of the
plots and checkpoint, and last its report page (ptr report: the dataset, the trust and the
training curves). --tiny runs every stage in about a minute (numbers then mean nothing).
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
    parser.add_argument('--ros-seconds', type=float, default=30.0,
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
    for p in result.summary.get('paired') or []:
        verdict = 'excludes zero' if p['ci_low'] > 0 or p['ci_high'] < 0 else 'includes zero'
        print(f'| {p["method"]} − uniform, paired over {p["pairs"]} goals | {p["diff"]:+.2f} '
              f'[{p["ci_low"]:+.2f}, {p["ci_high"]:+.2f}] (95% interval {verdict}) |')
    if ros is not None:
        print(f'| policy_node over ROS 2 ({ros_seconds:g} s, {ros["commands"]} commands) | '
              f'{ros["successes"]}/{ros["episodes"]} episodes solved |')
    print()
    for t in result.summary.get('trust') or []:
        by = sorted(t['trust_by_source'].items(), key=lambda kv: (kv[0] != 'expert', kv[0]))
        print('trust per source (mean over episodes): '
              + ', '.join(f'{src} {v:.2f}' for src, v in by))
        low = dict(t['auroc'].get('trust', {}))
        if low:
            print('trust AUROC, expert vs source: '
                  + ', '.join(f'{src} {v:.2f}' for src, v in sorted(low.items())))
    print()
    print(f'results:    {out / "results.md"}')
    print(f'plots:      {out / "success.png"}, {out / "trust_by_episode.png"} (trust per '
          'episode, by source)')
    if checkpoint is not None:
        print(f'checkpoint: {checkpoint}  (serve it: ros2 run ptr policy_node --ros-args '
              f'-p checkpoint:={checkpoint} -p robot:={result.robot})')
        from ptr_cli.report_page import write_report  # the dataset + training report page

        print(f'report:     {write_report(out / "report", run=checkpoint)}  (open in a browser)')
