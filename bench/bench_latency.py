"""End-to-end latency of the policy node: camera message -> published command.

For each head (flow, diffusion) x control rate (10, 30 Hz) x sampling steps, a ``sim_arm_node``
and a ``policy_node`` (debug-size checkpoint trained here in seconds) run as separate processes
over DDS on this machine; the policy is enabled and commands are recorded for ``--seconds``.

Columns (ms):
  infer      model inference alone (worker thread), p50 / p99
  obs->ready newest observation received -> chunk ready for the control loop, p50 / p99
  obs->cmd   newest observation received -> first command published from it, p50 / p99
             (includes waiting for the next control tick: up to one period by design)
  jitter     command period |period - 1/rate|, p99, at the subscriber (DDS included)
  node jit   the same, measured at publication inside the node

    .venv/bin/python bench/bench_latency.py                 # CPU, ~2 minutes
    .venv/bin/python bench/bench_latency.py --device cuda --steps 1 10 50
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests' / 'ros'))

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))


def measure(run_dir: Path, checkpoint: Path, *, rate: float, steps: int, device: str,
            seconds: float, tag: str) -> dict[str, float]:
    import simdata
    from diagnostic_msgs.msg import DiagnosticArray
    from rosharness import NodeProcess, Probe, wait_for
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    topics = {k: f'/bench_{tag}/{k}' for k in ('joint_states', 'image', 'commands', 'forward')}
    sim = NodeProcess('ptr_ros.sim_arm_node', {
        'profile': str(checkpoint), 'joint_states_topic': topics['joint_states'],
        'camera_topics': [f'front={topics["image"]}'], 'image_size': list(simdata.SOURCE_SIZE),
        'camera_rate_hz': 2 * rate, 'rate_hz': 100.0, 'trajectory_topic': topics['commands'],
        'forward_topic': topics['forward'],
    }, run_dir / f'sim_{tag}.log', f'bench_sim_{tag}')
    policy = NodeProcess('ptr_ros.policy_node', {
        'checkpoint': str(checkpoint), 'device': device, 'control_rate_hz': rate,
        'allow_rate_mismatch': True,  # 30 Hz on a 10 Hz checkpoint: latency only
        'sampling_steps': steps, 'joint_states_topic': topics['joint_states'],
        'cameras.front.topic': topics['image'], 'command_topic': topics['commands'],
        'execute_steps': 4, 'torch_threads': 1, 'diagnostics_rate_hz': 1.0,
    }, run_dir / f'policy_{tag}.log', f'bench_policy_{tag}')
    probe = Probe(f'bench_probe_{tag}')
    try:
        probe.record('command', JointTrajectory, topics['commands'])
        probe.record('diagnostics', DiagnosticArray, '/diagnostics')
        name = f'bench_policy_{tag}'

        def disabled() -> bool:
            assert policy.alive(), policy.output()[-2000:]
            diag = probe.latest_diagnostics(name)
            return diag is not None and diag['state'] == 'disabled'

        wait_for(disabled, 180, f'{name} up')
        probe.call(SetBool, f'/{name}/enable', SetBool.Request(data=True))
        wait_for(lambda: len(probe.recorded.get('command')) > 5, 60, 'first commands')
        start = time.monotonic()
        time.sleep(seconds)
        stamps = np.array([t for t, _ in probe.recorded.get('command') if t > start])
        # Fresh diagnostics cover the measured window (the node's windows hold 500 samples).
        before = len(probe.diagnostics(name))
        wait_for(lambda: len(probe.diagnostics(name)) > before, 10, 'diagnostics')
        diag = probe.diagnostics(name)[-1][1]
    finally:
        probe.close()
        policy.stop()
        sim.stop()
    jitter = np.abs(np.diff(stamps) - 1.0 / rate) * 1e3
    node_p99 = float(diag['command_period_ms.p99'])
    return {
        'infer50': float(diag['inference_ms.p50']), 'infer99': float(diag['inference_ms.p99']),
        'ready50': float(diag['obs_to_ready_ms.p50']),
        'ready99': float(diag['obs_to_ready_ms.p99']),
        'cmd50': float(diag['obs_to_command_ms.p50']),
        'cmd99': float(diag['obs_to_command_ms.p99']),
        'jitter99': float(np.percentile(jitter, 99)) if len(jitter) else float('nan'),
        'node_jitter99': abs(node_p99 - 1e3 / rate),
        'commands': float(len(stamps)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='inference device (cpu, cuda)')
    parser.add_argument('--rates', type=float, nargs='+', default=[10.0, 30.0])
    parser.add_argument('--steps', type=int, nargs='+', default=[1, 4, 10])
    parser.add_argument('--heads', nargs='+', default=['flow', 'diffusion'])
    parser.add_argument('--seconds', type=float, default=6.0, help='measured window per row')
    args = parser.parse_args()

    import simdata

    with tempfile.TemporaryDirectory(prefix='ptr_bench_') as tmp:
        root = Path(tmp)
        bags = simdata.write_bags(root / 'bags')
        dataset = simdata.build_dataset(root, bags)
        checkpoints = {h: simdata.train_checkpoint(REPO, dataset, root / f'run_{h}', head=h)
                       for h in args.heads}
        # One unmeasured run first: the first node pair after training starts on cold caches.
        measure(root, checkpoints[args.heads[0]], rate=args.rates[0], steps=args.steps[0],
                device=args.device, seconds=2.0, tag=f'warmup_{os.getpid()}')
        rows = []
        for head in args.heads:
            for rate in args.rates:
                for steps in args.steps:
                    tag = f'{head}_{int(rate)}_{steps}_{os.getpid()}'
                    got = measure(root, checkpoints[head], rate=rate, steps=steps,
                                  device=args.device, seconds=args.seconds, tag=tag)
                    rows.append((head, rate, steps, got))
                    print(f'  measured {head} {rate:g} Hz {steps} steps', file=sys.stderr)
    print(f'\npolicy_node latency, debug-size model, device={args.device}, '
          f'{os.cpu_count()} CPU cores, {args.seconds:g} s per row')
    header = (f'{"head":<10}{"Hz":>4}{"steps":>6}  {"infer p50/p99":>15}  '
              f'{"obs->ready p50/p99":>19}  {"obs->cmd p50/p99":>17}  {"jitter p99":>10}  '
              f'{"node jit":>8}  {"cmds":>5}')
    print(header)
    print('-' * len(header))
    for head, rate, steps, g in rows:
        print(f'{head:<10}{rate:>4g}{steps:>6}  {g["infer50"]:>7.1f}/{g["infer99"]:<7.1f}  '
              f'{g["ready50"]:>9.1f}/{g["ready99"]:<9.1f}  {g["cmd50"]:>8.1f}/{g["cmd99"]:<8.1f}  '
              f'{g["jitter99"]:>10.2f}  {g["node_jitter99"]:>8.2f}  {int(g["commands"]):>5}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
