"""Record Meta-World scripted-expert episodes as ROS 2 bags (MCAP) with known-quality sources.

Each episode becomes one rosbag2 directory under OUT/setup_<s>/ with JointState, object/goal
PoseStamped, JPEG CompressedImage per camera, the commanded action (Float64MultiArray) and the
task name; its metadata carries ptr.source, ptr.success, ptr.task and ptr.setup. Ingest each
setup's folder with its profile, which is also copied to OUT/profiles/metaworld_<s>.yaml
(without cameras when --no-images).

Sources (every name in ``ptr_sim.sources.SOURCES``; an unknown tag lists them): expert,
noisy_<sigma> (executed action noise), recovery (pushed off course, then the expert recovers),
graded operators (slow, hesitant, jerky, detour), structural defects (early release, grasp
miss, wrong target), partial episodes, near-right labels (delayed_<k>, gain, flipped axis,
gripper sign) and low-attribution labels: random_labels, shuffled_labels (another episode's
actions), delayed_<k> (labels k steps late).

Every episode runs to --max-steps (the source keeps acting after success: the expert holds the
object at the goal), as the benchmark records, so episode length says nothing about success;
--stop-after-success N ends each episode N steps after its first success instead.

Example:
  ptr record-sim --tasks pick-place-v3 --setups a,b \\
      --mix expert:20,noisy_0.5:10,random_labels:10,delayed_6:10 --out bags/mw
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from ptr_sim.recorder import RecordedEpisode, plan_episodes, record, write_profile
from ptr_sim.sources import parse_mix


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--out', required=True, help='output folder for the bags')
    parser.add_argument('--tasks', default='pick-place-v3',
                        help='comma-separated Meta-World tasks (default: %(default)s)')
    parser.add_argument('--setups', default='a,b',
                        help='recording setups, episodes alternate between them (default: '
                        '%(default)s)')
    parser.add_argument('--mix', default='expert:4,noisy_0.5:2,recovery:2,random_labels:2,'
                        'shuffled_labels:2,delayed_6:2',
                        help='episodes per source and task, <source>:<n>,... (default: '
                        '%(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='base seed for goals and noise')
    parser.add_argument('--max-steps', type=int, default=150,
                        help='episode cap in 80 Hz control steps (default: %(default)s)')
    parser.add_argument('--stop-after-success', type=int, default=None, metavar='N',
                        help='end each episode N steps after its first success (default: '
                        'every episode runs to --max-steps, a fixed horizon)')
    parser.add_argument('--camera-stride', type=int, default=4,
                        help='render cameras every N control steps (default: %(default)s = '
                        '20 Hz)')
    parser.add_argument('--image-size', type=int, default=96, help='rendered image side (px)')
    parser.add_argument('--no-images', action='store_true',
                        help='write no camera topics (state-only data, 10x faster)')
    parser.add_argument('--workers', type=int, default=1, help='parallel recording processes')


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ptr_core.errors import PtrError

    if args.stop_after_success is not None and args.stop_after_success < 0:
        msg = f'--stop-after-success: {args.stop_after_success} is not a step count >= 0'
        raise PtrError(msg)
    mix = parse_mix(args.mix)
    tasks = [t.strip() for t in args.tasks.split(',') if t.strip()]
    setups = [s.strip() for s in args.setups.split(',') if s.strip()]
    requests = plan_episodes(tasks, setups, mix, seed=args.seed)
    bar = tqdm(total=len(requests), desc='record-sim', unit='ep')
    stats: Counter[tuple[str, bool]] = Counter()

    def on_episode(ep: RecordedEpisode) -> None:
        stats[(ep.source, ep.success)] += 1
        bar.update(1)

    t0 = time.monotonic()
    record(requests, args.out, image_size=args.image_size, camera_stride=args.camera_stride,
           max_steps=args.max_steps, render=not args.no_images, workers=args.workers,
           settle_steps=args.stop_after_success, on_episode=on_episode)
    bar.close()
    print(f'recorded {len(requests)} episodes in {time.monotonic() - t0:.1f} s → {args.out}')
    print(f'{"source":<18} {"episodes":>8} {"success":>8}')
    for source in mix:
        n = stats[(source, True)] + stats[(source, False)]
        print(f'{source:<18} {n:>8} {stats[(source, True)] / max(n, 1):>8.2f}')
    for setup in setups:
        profile = write_profile(setup, f'{args.out}/profiles/metaworld_{setup}.yaml',
                                cameras=not args.no_images)
        print(f'ingest with: ptr ingest {args.out}/setup_{setup} --profile {profile} '
              '--out DATASET')
    return 0
