"""The one-command demo: mixed-quality Meta-World data -> ingest -> uniform vs PTR -> simulator.

With no arguments it: checks (and, unless --no-install, installs) the simulator; records a small
mixed-quality set of ROS 2 bags (expert, noisy, recovery, random/shuffled/delayed labels, two
recording setups); ingests them; post-trains a policy with uniform weights and with PTR; evaluates
both in the simulator on held-out goals; shows where PTR put its weight per source; then, when
rclpy is available, runs the policy node against the simulated arm over ROS 2 for a few seconds.
It ends with a results table and the paths of the plots and checkpoint. About 10 minutes on a
2-core CPU; --tiny runs every stage in about a minute (numbers then mean nothing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIM_PACKAGES = ('metaworld==3.1.1', 'mujoco==3.3.0')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--tiny', action='store_true',
                        help='a minute-long run of every stage (CI); results are not meaningful')
    parser.add_argument('--out', default='runs/demo', help='output folder (default: %(default)s)')
    parser.add_argument('--ros-seconds', type=float, default=8.0,
                        help='how long the policy node drives the simulated arm (default: '
                        '%(default)s)')
    parser.add_argument('--no-ros', action='store_true', help='skip the ROS 2 stage')
    parser.add_argument('--no-install', action='store_true',
                        help='never pip-install the simulator (fail instead)')
    parser.add_argument('--fresh', action='store_true',
                        help='delete OUT first instead of resuming what is there')


class _Stages:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def say(self, line: str) -> None:
        print(f'[{time.monotonic() - self.t0:6.0f} s] {line}', flush=True)


def _ensure_sim(stages: _Stages, allow_install: bool) -> None:
    if importlib.util.find_spec('metaworld') and importlib.util.find_spec('mujoco'):
        stages.say('[0] simulator: metaworld + mujoco present')
        return
    if not allow_install:
        from ptr_core.errors import PtrError

        msg = f'the simulator is missing; install it: pip install {" ".join(SIM_PACKAGES)}'
        raise PtrError(msg)
    stages.say(f'[0] installing the simulator: pip install {" ".join(SIM_PACKAGES)}')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', *SIM_PACKAGES],
                   check=True)


def _ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    env.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(101, 200)))
    env.setdefault('MUJOCO_GL', 'egl')
    return env


def _ros_stage(stages: _Stages, checkpoint: Path, task: str, seconds: float,
               out: Path) -> dict[str, Any] | None:
    """Policy node + the Meta-World arm node over ROS 2; returns the arm node's summary."""
    if importlib.util.find_spec('rclpy') is None:
        stages.say('[5] ROS 2 stage skipped: rclpy is not available (pip install -e .[ros])')
        return None
    if importlib.util.find_spec('ptr_ros.metaworld_arm_node') is None:
        stages.say('[5] ROS 2 stage skipped: ptr_ros.metaworld_arm_node is not in this build')
        return None
    stages.say(f'[5] ROS 2: policy_node drives the simulated Meta-World arm for {seconds:g} s')
    env = _ros_env()
    summary = out / 'ros_stage.json'
    summary.unlink(missing_ok=True)
    node = subprocess.Popen(
        [sys.executable, '-m', 'ptr_ros.policy_node', '--ros-args',
         '-p', f'checkpoint:={checkpoint}', '-p', 'robot:=sawyer_mw_a',
         '-p', 'command_interface:=forward', '-p', 'command_topic:=/arm/ee_delta_command',
         '-p', 'execute_steps:=4', '-p', 'max_step_change:=2.0', '-p', 'torch_threads:=1',
         '-p', 'temporal_ensembling:=false'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        arm = subprocess.run(
            [sys.executable, '-m', 'ptr_ros.metaworld_arm_node', '--ros-args',
             '-p', f'task:={task}', '-p', 'setup:=a', '-p', f'duration_s:={seconds}',
             '-p', f'summary:={summary}', '-p', 'enable_service:=/policy_node/enable'],
            env=env, capture_output=True, text=True, timeout=seconds + 90,
        )
    except subprocess.TimeoutExpired:
        stages.say('    the arm node did not finish in time')
        return None
    finally:
        node.terminate()
        try:
            _, err = node.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            node.kill()
            _, err = node.communicate()
    if arm.returncode != 0 or not summary.exists():
        tail = (arm.stderr or err or '').strip().splitlines()[-3:]
        stages.say(f'    ROS 2 stage failed (exit {arm.returncode}): {" | ".join(tail)}')
        return None
    result: dict[str, Any] = json.loads(summary.read_text())
    stages.say(f'    {result["commands"]} commands received, {result["sim_steps"]} simulator '
               f'steps, {result["successes"]}/{result["episodes"]} episodes solved')
    return result


def run(args: argparse.Namespace) -> int:
    import shutil

    stages = _Stages()
    _ensure_sim(stages, allow_install=not args.no_install)

    from ptr_sim.benchmark import markdown, run_benchmark
    from ptr_sim.benchmark_config import load_benchmark_config

    cfg = load_benchmark_config('tiny' if args.tiny else 'demo')
    out = Path(args.out)
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
    stages.say(f'ptr demo ({cfg.name}) -> {out}')
    summary = run_benchmark(cfg, out, say=stages.say)

    print()
    print(markdown(summary))
    ptr_cell = next((c for c in summary['cells'] if c['method'] != 'uniform'), None)
    checkpoint = Path(ptr_cell['checkpoint']) if ptr_cell else None
    ros = None
    if not args.no_ros and checkpoint is not None:
        ros = _ros_stage(stages, checkpoint, cfg.tasks[0], args.ros_seconds, out)
    stages.say('done')
    print()
    print('| method | success (held-out goals) |')
    print('|---|---|')
    for t in summary['table']:
        print(f'| {t["method"]} ({t["head"]}) | {t["success_mean"]:.2f} |')
    if ros is not None:
        print(f'| policy_node over ROS 2 ({args.ros_seconds:g} s) | '
              f'{ros["successes"]}/{ros["episodes"]} episodes |')
    print()
    print(f'results:    {out / "results.md"}')
    print(f'plots:      {out / "success.png"}, {out / "weights_by_source.png"}, '
          f'{out / "diagnostics.png"}')
    if checkpoint is not None:
        print(f'checkpoint: {checkpoint}  (serve it: ros2 run ptr policy_node --ros-args '
              f'-p checkpoint:={checkpoint} -p robot:=sawyer_mw_a)')
    return 0
