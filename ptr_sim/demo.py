"""The one-command demo: mixed-quality Meta-World data -> ingest -> uniform vs PTR -> simulator.

``run_demo`` checks that the simulator is installed (it never installs anything: the environment
scripts do, ``source scripts/env.sh``); records a small mixed-quality set of ROS 2 bags (expert,
noisy, recovery, random/shuffled/delayed labels, two recording setups); ingests them; post-trains
a policy with uniform weights and with PTR; evaluates both in the simulator on held-out goals
(``ptr_sim.benchmark`` with the ``demo`` or ``tiny`` preset); then, when rclpy is available, runs
``policy_node`` against the simulated Meta-World arm over ROS 2 for a few seconds. The nodes are
separate processes started through ptr_ros' own entry points (the ``policy_node`` and
``metaworld_arm_node`` console scripts); nothing here imports rclpy.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptr_core.errors import PtrError
from ptr_sim.setups import get_setup

__all__ = ['SIM_INSTALL', 'DemoOptions', 'DemoResult', 'check_simulator', 'ros_stage',
           'run_demo']

log = logging.getLogger(__name__)

Say = Callable[[str], None]
SIM_INSTALL = "pip install -e '.[sim]' (or: source scripts/env.sh)"
# The recording setup the ROS stage serves: b (full object poses on /sawyer/...), on which
# every demo-sized run solved more held-out goals than on a (positions only): trust 0.55 vs
# 0.25, 0.68 vs 0.52, 0.36 vs 0.04 over 20-25 goals each.
SETUP = 'b'
# The ROS stage's control rate. The Meta-World arm node steps the simulator once per fresh
# command, so simulated time advances one recorded step per command whatever the wall rate: at
# 20 Hz a CPU that needs up to ~150 ms per chunk still gets every chunk in before it expires
# (at the recorded 80 Hz a chunk of L = 8 ticks lasts 100 ms, and a loaded 2-core machine
# dropped most chunks: 40 commands in 15 s). The policy node warns about the rate difference.
ROS_RATE_HZ = 20.0


@dataclass(frozen=True)
class DemoOptions:
    tiny: bool = False  # every stage in about a minute; the numbers then mean nothing
    out: Path = Path('runs/demo')
    ros_seconds: float = 30.0  # how long the policy node drives the simulated arm
    ros: bool = True  # run the ROS 2 stage (when rclpy is available)
    fresh: bool = False  # delete ``out`` first instead of resuming what is there

    def __post_init__(self) -> None:
        if self.ros_seconds <= 0:
            msg = f'ros_seconds must be > 0, got {self.ros_seconds}'
            raise PtrError(msg)


@dataclass(frozen=True)
class DemoResult:
    out: Path
    summary: dict[str, Any]  # ``run_benchmark``'s summary (cells, table, ...)
    checkpoint: Path | None  # the PTR cell's final checkpoint
    robot: str  # the robot (recording setup) the ROS stage serves
    ros: dict[str, Any] | None  # the arm node's summary of the ROS 2 stage (None: skipped)


def check_simulator(say: Say) -> None:
    """Fail with one line naming the install command when Meta-World or MuJoCo is missing."""
    missing = [m for m in ('metaworld', 'mujoco') if importlib.util.find_spec(m) is None]
    if missing:
        msg = f'the simulator is missing ({", ".join(missing)}); install it: {SIM_INSTALL}'
        raise PtrError(msg)
    say('[0] simulator: metaworld + mujoco present')


def run_demo(options: DemoOptions, say: Say) -> DemoResult:
    check_simulator(say)
    from ptr_sim.benchmark import run_benchmark
    from ptr_sim.benchmark_config import load_benchmark_config

    cfg = load_benchmark_config('tiny' if options.tiny else 'demo')
    out = Path(options.out)
    if options.fresh:
        shutil.rmtree(out, ignore_errors=True)
    say(f'ptr demo ({cfg.name}) -> {out}')
    summary = run_benchmark(cfg, out, say=say)
    ptr_cell = next((c for c in summary['cells'] if c['method'] != 'uniform'), None)
    checkpoint = Path(ptr_cell['checkpoint']) if ptr_cell else None
    ros = None
    if options.ros and checkpoint is not None and ptr_cell is not None:
        # the evaluation's own held-out goals of this setup, in its order (setup k of seed s
        # is evaluated on eval_seeds(n, 10 s + k)), so the node's episodes can be compared
        # goal by goal with the simulator evaluation of the same checkpoint
        k, n = cfg.setups.index(SETUP), max(1, cfg.eval_episodes // len(cfg.setups))
        evaluated = [bool(x) for x in ptr_cell['successes'][k * n:(k + 1) * n]]
        ros = ros_stage(checkpoint, cfg.tasks[0], options.ros_seconds, out, say,
                        goal_seed=10 * int(ptr_cell['seed']) + k)
        if ros is not None and ros['episodes']:
            m = min(ros['episodes'], len(evaluated))
            ros['evaluated_successes'] = sum(evaluated[:m])
            say(f'    the simulator evaluation solved {sum(evaluated[:m])}/{m} of the same goals')
    return DemoResult(out, summary, checkpoint, get_setup(SETUP).robot, ros)


def _ros_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('ROS_LOCALHOST_ONLY', '1')
    env.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(101, 200)))
    env.setdefault('MUJOCO_GL', 'egl')
    return env


def _node_command(script: str, module: str) -> list[str]:
    """A ptr_ros node's console script (installed beside this Python, or on PATH); the
    module's ``main`` when the package was not installed with its scripts."""
    beside = Path(sys.executable).parent / script
    found = str(beside) if beside.exists() else shutil.which(script)
    return [found] if found else [sys.executable, '-m', module]


def ros_stage(checkpoint: Path, task: str, seconds: float, out: Path,
              say: Say, *, goal_seed: int = 7) -> dict[str, Any] | None:
    """Policy node + the Meta-World arm node over ROS 2; returns the arm node's summary."""
    if importlib.util.find_spec('rclpy') is None:
        say('[5] ROS 2 stage skipped: rclpy is not available (pip install -e .[ros])')
        return None
    if importlib.util.find_spec('ptr_ros.metaworld_arm_node') is None:
        say('[5] ROS 2 stage skipped: ptr_ros.metaworld_arm_node is not in this build')
        return None
    say(f'[5] ROS 2: policy_node drives the simulated Meta-World arm for {seconds:g} s')
    env = _ros_env()
    summary = out / 'ros_stage.json'
    summary.unlink(missing_ok=True)
    node = subprocess.Popen(
        [*_node_command('policy_node', 'ptr_ros.policy_node'), '--ros-args',
         '-p', f'checkpoint:={checkpoint}', '-p', f'robot:={get_setup(SETUP).robot}',
         '-p', 'command_interface:=forward',
         '-p', f'command_topic:={get_setup(SETUP).command_topic}',
         '-p', 'execute_steps:=4', '-p', 'max_step_change:=2.0', '-p', 'torch_threads:=1',
         '-p', 'temporal_ensembling:=false', '-p', f'control_rate_hz:={ROS_RATE_HZ}',
         '-p', 'allow_rate_mismatch:=true'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        arm = subprocess.run(
            [*_node_command('metaworld_arm_node', 'ptr_ros.metaworld_arm_node'), '--ros-args',
             '-p', f'task:={task}', '-p', f'setup:={SETUP}', '-p', f'duration_s:={seconds}',
             '-p', f'summary:={summary}', '-p', 'enable_service:=/policy_node/enable',
             '-p', f'rate_hz:={ROS_RATE_HZ}', '-p', 'lockstep:=true',
             '-p', f'goal_seed:={goal_seed}'],
            env=env, capture_output=True, text=True, timeout=seconds + 90,
        )
    except subprocess.TimeoutExpired:
        say('    the arm node did not finish in time')
        return None
    finally:
        err = _stop(node)
    if arm.returncode != 0 or not summary.exists():
        tail = (arm.stderr or err or '').strip().splitlines()[-3:]
        say(f'    ROS 2 stage failed (exit {arm.returncode}): {" | ".join(tail)}')
        return None
    result: dict[str, Any] = json.loads(summary.read_text())
    say(f'    {result["commands"]} commands received, {result["sim_steps"]} simulator '
        f'steps, {result["successes"]}/{result["episodes"]} episodes solved')
    return result


def _stop(node: subprocess.Popen[str]) -> str:
    """Stop the policy node process; returns what it wrote to stderr."""
    node.terminate()
    try:
        _, err = node.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        node.kill()
        _, err = node.communicate()
    return err or ''
