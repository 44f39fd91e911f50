"""How the policy node keeps time: camera message -> published command, and the command cadence.

For each head (flow, diffusion) x control rate x sampling steps, a ``sim_arm_node`` and a
``policy_node`` (debug-size checkpoint trained here in seconds) run as separate processes over
DDS on this machine; the policy is enabled and every command is recorded for ``--seconds`` by a
subscriber in this (third) process. ``--load N`` runs N CPU-bound processes (``yes``) beside the
nodes for the whole run; they are killed when the bench ends, however it ends.

Columns (ms unless said):
  infer      model inference alone (the node's worker thread), p50 / p99
  obs->cmd   newest observation received -> first command published from it, p50 / p99
             (includes waiting for the next control tick: up to one period by design)
  pub jit    period jitter at publication: p99 of |period - T| over the window's DDS source
             timestamps (stamped by the publisher as it writes)
  sub jit    the same statistic over the same messages' arrival in the subscriber process
             (DDS and Python dispatch included) -- ``ptr_ros.cadence.period_jitter`` for both
  max gap    the longest publication gap, beside half the executed horizon (points x T / 2):
             a gap longer than the horizon lets the controller reach its last point and hold
  skip       control ticks the node skipped (its control thread woke a period late)
  late max   the node's worst tick wake / publication after the planned tick time (its cadence
             report, the minute in progress: start-up included)
  load       the 1-minute load average at the end of the row

``--startup`` instead times start -> first command: a ``policy_node`` process (enabled as soon as
its ``~/enable`` answers; inference in a thread, then in a process) against a bare torch + rclpy
node loading the same weights (``--bare-node``, in this file), all beside a running sim arm.

    .venv/bin/python bench/bench_latency.py                         # idle, ~2 minutes
    .venv/bin/python bench/bench_latency.py --load 2                # two busy processes beside
    .venv/bin/python bench/bench_latency.py --startup --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests' / 'ros'))

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))

EXECUTE_STEPS = 4  # K, and the points of each trajectory


def _die_with_parent() -> None:
    """In a child: SIGKILL when the bench process dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def cpu_hogs(n: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` processes of ``yes > /dev/null``, killed on exit (and with this process)."""
    procs = [subprocess.Popen(['yes'], stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent)
             for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(10)


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through cpu_hogs' finally


class Recorder:
    """Commands on ``topic``: (DDS source timestamp, arrival in this process), seconds."""

    def __init__(self, probe: Any, topic: str) -> None:
        from trajectory_msgs.msg import JointTrajectory

        self.rows: list[tuple[float, float]] = []
        probe.node.create_subscription(JointTrajectory, topic, self._on_message, 100)

    def _on_message(self, msg: Any, info: Any) -> None:
        self.rows.append((info['source_timestamp'] * 1e-9, time.time()))


def measure(run_dir: Path, checkpoint: Path, *, rate: float, steps: int, device: str,
            seconds: float, tag: str, process: bool = False, priority: int = 0,
            ) -> dict[str, float]:
    from diagnostic_msgs.msg import DiagnosticArray
    from rosharness import Probe, wait_for
    from std_srvs.srv import SetBool

    topics, sim = start_sim(run_dir, checkpoint, rate, tag)
    policy = start_policy(run_dir, checkpoint, topics, rate=rate, steps=steps, device=device,
                          tag=tag, process=process, priority=priority)
    probe = Probe(f'bench_probe_{tag}')
    try:
        commands = Recorder(probe, topics['commands'])
        probe.record('diagnostics', DiagnosticArray, '/diagnostics')
        name = f'bench_policy_{tag}'

        def disabled() -> bool:
            assert policy.alive(), policy.output()[-2000:]
            diag = probe.latest_diagnostics(name)
            return diag is not None and diag['state'] == 'disabled'

        wait_for(disabled, 180, f'{name} up')
        probe.call(SetBool, f'/{name}/enable', SetBool.Request(data=True))
        wait_for(lambda: len(commands.rows) > 5, 60, 'first commands')
        start = time.time()
        time.sleep(seconds)
        rows = np.array([r for r in list(commands.rows) if r[1] > start])
        before = len(probe.diagnostics(name))
        wait_for(lambda: len(probe.diagnostics(name)) > before, 10, 'diagnostics')
        diag = probe.diagnostics(name)[-1][1]
    finally:
        probe.close()
        policy.stop()
        sim.stop()
    return summarize(rows, diag, rate)


def summarize(rows: np.ndarray, diag: dict[str, str], rate: float) -> dict[str, float]:
    from ptr_ros.cadence import period_jitter

    pub = period_jitter(rows[:, 0], 1.0 / rate)
    sub = period_jitter(rows[:, 1], 1.0 / rate)
    return {
        'infer50': float(diag['inference_ms.p50']), 'infer99': float(diag['inference_ms.p99']),
        'cmd50': float(diag['obs_to_command_ms.p50']),
        'cmd99': float(diag['obs_to_command_ms.p99']),
        'pub99': pub.p99_ms, 'sub99': sub.p99_ms, 'gap': pub.max_gap_ms,
        'half_horizon': EXECUTE_STEPS / rate / 2 * 1e3,
        'skipped': float(diag.get('cadence.overruns', 'nan')),
        'woke': float(diag.get('cadence.tick_late_ms.max', 'nan')),
        'sent': float(diag.get('cadence.publish_late_ms.max', 'nan')),
        'commands': float(len(rows)), 'load': os.getloadavg()[0],
    }


def start_sim(run_dir: Path, checkpoint: Path, rate: float, tag: str) -> tuple[dict[str, str],
                                                                               Any]:
    import simdata
    from rosharness import NodeProcess

    topics = {k: f'/bench_{tag}/{k}' for k in ('joint_states', 'image', 'commands', 'forward')}
    sim = NodeProcess('ptr_ros.sim_arm_node', {
        'profile': str(checkpoint), 'joint_states_topic': topics['joint_states'],
        'camera_topics': [f'front={topics["image"]}'], 'image_size': list(simdata.SOURCE_SIZE),
        'camera_rate_hz': 2 * rate, 'rate_hz': 100.0, 'trajectory_topic': topics['commands'],
        'forward_topic': topics['forward'],
    }, run_dir / f'sim_{tag}.log', f'bench_sim_{tag}')
    return topics, sim


def start_policy(run_dir: Path, checkpoint: Path, topics: dict[str, str], *, rate: float,
                 steps: int, device: str, tag: str, process: bool = False,
                 priority: int = 0) -> Any:
    from rosharness import NodeProcess

    return NodeProcess('ptr_ros.policy_node', {
        'checkpoint': str(checkpoint), 'device': device, 'control_rate_hz': rate,
        'allow_rate_mismatch': True,  # 30 Hz on a 10 Hz checkpoint: latency only
        'sampling_steps': steps, 'joint_states_topic': topics['joint_states'],
        'cameras.front.topic': topics['image'], 'command_topic': topics['commands'],
        'execute_steps': EXECUTE_STEPS, 'torch_threads': 1, 'diagnostics_rate_hz': 1.0,
        'inference_process': process, 'control_priority': priority,
    }, run_dir / f'policy_{tag}.log', f'bench_policy_{tag}')


# -- start -> first command -----------------------------------------------------------------
def startup(run_dir: Path, checkpoint: Path, *, device: str, tag: str) -> dict[str, float]:
    """Seconds from process start to the first command: policy_node, then the bare node."""
    from rosharness import Probe, wait_for
    from std_srvs.srv import SetBool

    topics, sim = start_sim(run_dir, checkpoint, 10.0, tag)
    probe = Probe(f'bench_start_probe_{tag}')
    out: dict[str, float] = {}
    try:
        commands = Recorder(probe, topics['commands'])
        wait_for(lambda: probe.node.count_publishers(topics['image']) > 0, 120, 'the sim arm')
        for kind in ('policy_node', 'policy_node/p', 'bare'):
            commands.rows.clear()
            started = time.time()
            if kind == 'bare':
                proc: Any = subprocess.Popen(
                    [sys.executable, __file__, '--bare-node', str(checkpoint), '--device',
                     device, '--topics', topics['joint_states'], topics['image'],
                     topics['commands']], env={**os.environ, 'OMP_NUM_THREADS': '1'},
                    preexec_fn=_die_with_parent)
            else:
                name = f'{tag}_start{len(out)}'
                proc = start_policy(run_dir, checkpoint, topics, rate=10.0, steps=0,
                                    device=device, tag=name, process=kind.endswith('/p'))
                client = probe.node.create_client(SetBool, f'/bench_policy_{name}/enable')
                wait_for(client.service_is_ready, 180, 'policy_node ~/enable', poll=0.01)
                client.call_async(SetBool.Request(data=True))
            try:
                wait_for(lambda: commands.rows, 180, f'{kind}: first command', poll=0.005)
                out[kind] = commands.rows[0][1] - started
            finally:
                if kind == 'bare':
                    proc.send_signal(signal.SIGINT)
                    proc.wait(30)
                else:
                    proc.stop()
    finally:
        probe.close()
        sim.stop()
    out['load'] = os.getloadavg()[0]
    return out


def bare_node(checkpoint: str, device: str, topics: list[str]) -> None:
    """The baseline: torch + rclpy, load the weights, infer on the first joint state and frame,
    publish one trajectory -- no parameters, safety, warm-up or threads."""
    import rclpy
    import torch
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from bag_tools.observation import decode_image, joint_positions
    from ptr_core.inference import PolicyRunner

    torch.set_num_threads(1)
    rclpy.init()
    node = rclpy.create_node('bench_bare_node')
    runner = PolicyRunner.from_checkpoint(checkpoint, device=device)
    robot = next(iter(runner.robots))
    profile = runner.profile(robot)['profile']
    joints: list[float] = []
    pub = node.create_publisher(JointTrajectory, topics[2], 10)

    def on_state(msg: Any) -> None:
        joints[:] = joint_positions(msg, profile['joints']).tolist()

    def on_image(msg: Any) -> None:
        if not joints:
            return
        frame = decode_image(msg, size=tuple(runner.image_size), depth=False)
        state = np.repeat(np.asarray([joints], np.float32), runner.obs_horizon, axis=0)
        images = {'front': np.repeat(frame[None], runner.obs_horizon, axis=0)}
        actions = np.asarray(runner.infer(state, images, robot))
        out = JointTrajectory(joint_names=list(profile['joints']))
        out.points = [JointTrajectoryPoint(positions=[float(v) for v in actions[0]])]
        pub.publish(out)

    node.create_subscription(JointState, topics[0], on_state, qos_profile_sensor_data)
    node.create_subscription(Image, topics[1], on_image, qos_profile_sensor_data)
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    except RuntimeError:  # SIGINT shut the context down while taking a message (run_node)
        if rclpy.ok():
            raise
    node.destroy_node()
    rclpy.try_shutdown()


# -- table ----------------------------------------------------------------------------------
def print_rows(rows: list[tuple[str, float, int, dict[str, float]]], args: Any) -> None:
    print(f'\npolicy_node timing, debug-size model, device={args.device}, {os.cpu_count()} '
          f'CPU cores, {args.load} CPU-bound processes beside, {args.seconds:g} s per row')
    print('head/t: inference in a thread of the node; head/p: in a child process; a number '
          'after it: the control thread at that SCHED_FIFO priority')
    header = (f'{"head":<12}{"Hz":>4}{"steps":>6}  {"infer p50/p99":>15}  '
              f'{"obs->cmd p50/p99":>17}  {"pub jit":>7}  {"sub jit":>7}  '
              f'{"max gap/half hor.":>17}  {"skip":>4}  {"late max":>11}  {"cmds":>5}  '
              f'{"load":>5}')
    print(header)
    print('-' * len(header))
    for head, rate, steps, g in rows:
        print(f'{head:<12}{rate:>4g}{steps:>6}  {g["infer50"]:>7.1f}/{g["infer99"]:<7.1f}  '
              f'{g["cmd50"]:>8.1f}/{g["cmd99"]:<8.1f}  {g["pub99"]:>7.2f}  {g["sub99"]:>7.2f}  '
              f'{g["gap"]:>8.1f}/{g["half_horizon"]:<8.1f}  {int(g["skipped"]):>4}  '
              f'{g["woke"]:>5.1f}/{g["sent"]:<5.1f}  {int(g["commands"]):>5}  {g["load"]:>5.2f}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='inference device (cpu, cuda)')
    parser.add_argument('--rates', type=float, nargs='+', default=[30.0])
    parser.add_argument('--steps', type=int, nargs='+', default=[4])
    parser.add_argument('--heads', nargs='+', default=['flow', 'diffusion'])
    parser.add_argument('--seconds', type=float, default=20.0, help='measured window per row')
    parser.add_argument('--load', type=int, default=0, help='CPU-bound processes beside')
    parser.add_argument('--inference', nargs='+', choices=['thread', 'process'],
                        default=['thread'], help='where the node infers (inference_process)')
    parser.add_argument('--priority', type=int, nargs='+', default=[0],
                        help='control_priority of the node (SCHED_FIFO; 0: normal)')
    parser.add_argument('--startup', action='store_true', help='time start -> first command')
    parser.add_argument('--repeat', type=int, default=1, help='--startup runs per head')
    parser.add_argument('--bare-node', metavar='CHECKPOINT', help=argparse.SUPPRESS)
    parser.add_argument('--topics', nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_node:
        bare_node(args.bare_node, args.device, args.topics)
        return 0
    signal.signal(signal.SIGTERM, _sigterm)

    import simdata

    with tempfile.TemporaryDirectory(prefix='ptr_bench_') as tmp:
        root = Path(tmp)
        bags = simdata.write_bags(root / 'bags')
        dataset = simdata.build_dataset(root, bags)
        checkpoints = {h: simdata.train_checkpoint(REPO, dataset, root / f'run_{h}', head=h)
                       for h in args.heads}
        with cpu_hogs(args.load):
            if args.startup:
                run_startup(root, checkpoints, args)
                return 0
            # One unmeasured run first: the first node pair after training starts cold.
            measure(root, checkpoints[args.heads[0]], rate=args.rates[0], steps=args.steps[0],
                    device=args.device, seconds=2.0, tag=f'warmup_{os.getpid()}')
            rows = []
            for head, rate, steps, where, prio in itertools.product(
                    args.heads, args.rates, args.steps, args.inference, args.priority):
                tag = f'{head}_{int(rate)}_{steps}_{where}_{prio}_{os.getpid()}'
                got = measure(root, checkpoints[head], rate=rate, steps=steps,
                              device=args.device, seconds=args.seconds, tag=tag,
                              process=where == 'process', priority=prio)
                rows.append((f'{head}/{where[0]}{prio or ""}', rate, steps, got))
                print(f'  measured {head} {rate:g} Hz {steps} steps ({where}, priority {prio})',
                      file=sys.stderr)
    print_rows(rows, args)
    return 0


def run_startup(root: Path, checkpoints: dict[str, Path], args: Any) -> None:
    print(f'\nstart -> first command (s), device={args.device}, {os.cpu_count()} CPU cores, '
          f'{args.load} CPU-bound processes beside')
    print('policy_node/p: inference_process true (the model loaded in a child process too)')
    print(f'{"head":<10}{"run":>4}  {"policy_node":>11}  {"ratio":>5}  {"policy_node/p":>13}  '
          f'{"ratio":>5}  {"bare node":>9}  {"load":>5}')
    for head, checkpoint in checkpoints.items():
        for k in range(args.repeat):
            got = startup(root, checkpoint, device=args.device, tag=f'{head}{k}_{os.getpid()}')
            bare = got['bare']
            print(f'{head:<10}{k:>4}  {got["policy_node"]:>11.2f}  '
                  f'{got["policy_node"] / bare:>5.2f}  {got["policy_node/p"]:>13.2f}  '
                  f'{got["policy_node/p"] / bare:>5.2f}  {bare:>9.2f}  {got["load"]:>5.2f}',
                  flush=True)


if __name__ == '__main__':
    sys.exit(main())
