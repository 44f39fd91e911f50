"""Step time and memory of PTR vs uniform on the same model and the same batch.

One process, one batch, the full training step of ``ptr_core.trainer`` (policy forward, weighter,
weighted loss, backward, AdamW, weighter.after_step); the arms alternate round-robin so machine
load drifts hit them alike. The ``trust`` arms apply a trust file (``ptr score``): by sampling
the step is the uniform step and the only extra work is the sampler's draw (timed separately,
per batch); as loss weights it adds one table lookup. The scoring pass itself is a separate cost,
reported by ``ptr score`` and the benchmark (scoring time / post-training time).
Reports the median step time, the ratio to uniform (goal: <= 1.15
for the default ``action`` score) and the extra memory: the weighter's parameters + buffers
(+ Adam state), and on CUDA the peak-allocated difference. On a shared CPU the wall clock is
noisy; the process CPU time per step (all threads) is the steadier measure of the extra work.

    .venv/bin/python bench/bench_ptr.py                      # CPU, 2 cameras 96x96, To=2, L=16
    .venv/bin/python bench/bench_ptr.py --device cuda --batch 128 --amp
    .venv/bin/python bench/bench_ptr.py --state-only --batch 256
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ptr_core.configuration import DataConfig, DatasetSpec, PolicyConfig
from ptr_core.data import MixtureSampler, build_data, make_loader
from ptr_core.policies.policy import ActionPolicy, build_policy
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.weighting import build_weighter
from ptr_core.weighting.base import SampleWeighter, weighted_mean

ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    'uniform': ('uniform', {}),
    'ptr action, delta (default)': ('ptr', {'warmup_steps': 0}),
    'ptr delta, target_size 32': ('ptr', {'warmup_steps': 0, 'target_size': 32}),
    'ptr action, residual target': ('ptr', {'warmup_steps': 0, 'target': 'residual'}),
    'ptr action, future target': ('ptr', {'warmup_steps': 0, 'target': 'future'}),
    'ptr future, random negatives': ('ptr', {'warmup_steps': 0, 'score_mode': 'future',
                                             'target': 'future', 'hard_negatives': 'none'}),
    'ptr future, hard negatives': ('ptr', {'warmup_steps': 0, 'score_mode': 'future',
                                           'target': 'future', 'controller': False}),
    'trust, sampling': ('trust', {'apply': 'sampling'}),
    'trust, loss weights': ('trust', {'apply': 'loss'}),
}


def _trust_file(root: Path) -> Path:
    """A trust file for the synthetic dataset (random trust per episode and frame)."""
    import numpy as np

    from bag_tools.dataset import Dataset
    from bag_tools.trust import EpisodeTrust, dataset_content_hash, make_trust_file, write_trust

    ds = Dataset.open(root)
    rng = np.random.default_rng(0)
    eps = [EpisodeTrust(dataset_content_hash(ds), e['id'], trust=float(rng.uniform(0.02, 1)),
                        score=0.0, fold=0, frame_trust=rng.uniform(0, 1, e['length']))
           for e in ds.manifest['episodes']]
    return write_trust(root.with_name('bench.trust.json'),
                       make_trust_file({'w_min': 0.02}, [(ds, eps)]))


def _draw_ms(bundle: Any, batch: int, weights: Any) -> float:
    """Median ms to draw one batch of window keys from the sampler (fresh blocks each time)."""
    out = []
    for seed in range(20):
        sampler = MixtureSampler(bundle.train.sizes, bundle.weights, batch_size=batch, seed=seed,
                                 window_weights=weights)
        it = iter(sampler)
        t0 = time.perf_counter()
        for _ in range(batch):
            next(it)
        out.append(1000 * (time.perf_counter() - t0))
    return statistics.median(out)


def _batch(args: argparse.Namespace, root: Path) -> tuple[dict[str, Tensor], Any]:
    cameras = () if args.state_only else ('front', 'wrist')
    make_synthetic_dataset(root, episodes=4, length=40, cameras=cameras,
                           image_size=(args.image, args.image), state_dim=7,
                           sources=('a', 'b'))
    data = DataConfig(datasets=(DatasetSpec(str(root)),), obs_horizon=2, val_fraction=0.0,
                      image_shift=4)
    bundle = build_data(data, chunk_length=PolicyConfig().chunk_length, seed=0)
    sampler = MixtureSampler(bundle.train.sizes, bundle.weights, batch_size=args.batch, seed=0)
    loader = make_loader(bundle.train, sampler, batch_size=args.batch, config=data,
                         device=torch.device('cpu'))
    return next(iter(loader)), bundle


def _arm(
    name: str, options: dict[str, Any], bundle: Any, device: torch.device, head: str,
    root: Path,
) -> tuple[ActionPolicy, SampleWeighter, torch.optim.Optimizer]:
    torch.manual_seed(0)
    policy = build_policy(PolicyConfig(head=head), bundle.preprocessor)
    policy.to(device)
    if name == 'trust':
        options = {**options, 'file': str(_trust_file(root))}
    weighter = build_weighter(name, options)
    weighter.bind(policy)
    if name == 'trust':
        weighter.bind_data(bundle, [str(root)])  # type: ignore[operator]
    weighter.to(device)
    params = [p for m in (policy, weighter) for p in m.parameters() if p.requires_grad]
    return policy, weighter, torch.optim.AdamW(params, lr=1e-4)


def _step(policy: ActionPolicy, weighter: SampleWeighter, opt: torch.optim.Optimizer,
          batch: dict[str, Tensor], step: int, amp: bool, device: torch.device) -> None:
    ctx: Any = (torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext())
    with ctx:
        out = policy.forward_train(batch)
        wout = weighter(batch, out, step)
        loss = weighted_mean(out.loss.float(), wout.weights) + wout.aux_loss.float()
    opt.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()
    weighter.after_step(batch, out, step)


def _bytes(module: nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in [*module.parameters(), *module.buffers()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--image', type=int, default=96)
    parser.add_argument('--state-only', action='store_true')
    parser.add_argument('--head', default='diffusion', choices=('diffusion', 'flow'))
    parser.add_argument('--steps', type=int, default=10, help='timed steps per arm')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--arms', default='',
                        help="';'-separated words picking arms, e.g. 'default;hard' "
                             '(uniform always runs)')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name) / 'data'
    batch, bundle = _batch(args, root)
    batch = {k: v.to(device) for k, v in batch.items()}
    wanted = [a.strip() for a in args.arms.split(';') if a.strip()]
    arms = {k: v for k, v in ARMS.items()
            if not wanted or k == 'uniform' or any(w in k for w in wanted)}
    built = {k: _arm(*v, bundle, device, args.head, root) for k, v in arms.items()}
    for k, (_, weighter, _) in built.items():
        if 'hard' in k:  # the controller's share at high accuracy: half the draws are hard
            weighter.controller.r_hard.fill_(0.5)  # type: ignore[operator]
    times: dict[str, list[float]] = {k: [] for k in arms}
    cpu_times: dict[str, list[float]] = {k: [] for k in arms}
    peak: dict[str, int] = dict.fromkeys(arms, 0)
    for i in range(args.warmup + args.steps):
        for k, (policy, weighter, opt) in built.items():
            if cuda:
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            t0, c0 = time.perf_counter(), time.process_time()
            _step(policy, weighter, opt, batch, i, args.amp, device)
            if cuda:
                torch.cuda.synchronize(device)
                peak[k] = max(peak[k], torch.cuda.max_memory_allocated(device))
            if i >= args.warmup:
                times[k].append(time.perf_counter() - t0)
                cpu_times[k].append(time.process_time() - c0)
    base = statistics.median(times['uniform'])
    cpu_base = statistics.median(cpu_times['uniform'])
    shape = 'state only' if args.state_only else f'2 cameras {args.image}x{args.image}'
    print(f'# {args.head} policy, {shape}, To=2, L=16, batch {args.batch}, device {device}'
          f'{" bf16" if args.amp else ""}, {args.steps} steps/arm, threads '
          f'{torch.get_num_threads()}')
    print(f'| {"arm":<30} | {"wall ms":>8} | {"x uniform":>9} | {"CPU ms":>8} |'
          f' {"x uniform":>9} | {"weighter MB":>11} | {"peak MB":>8} |')
    print(f'|{"-" * 32}|{"-" * 10}|{"-" * 11}|{"-" * 10}|{"-" * 11}|{"-" * 13}|{"-" * 10}|')
    for k in arms:
        med = statistics.median(times[k])
        weighter = built[k][1]
        mb = _bytes(weighter) / 2**20
        adam = sum(p.numel() * 4 * 2 for p in weighter.parameters() if p.requires_grad) / 2**20
        peak_s = f'{peak[k] / 2**20:8.0f}' if cuda else f'{"-":>8}'
        cpu = statistics.median(cpu_times[k])
        print(f'| {k:<30} | {1000 * med:8.1f} | {med / base:9.3f} | {1000 * cpu:8.1f} |'
              f' {cpu / cpu_base:9.3f} | {mb + adam:11.2f} | {peak_s} |')
    trusted = next((w for _, w, _ in built.values() if w.name == 'trust'
                    and w.window_weights() is not None), None)  # type: ignore[operator]
    if trusted is not None:
        plain = _draw_ms(bundle, args.batch, None)
        weighted = _draw_ms(bundle, args.batch, trusted.window_weights())  # type: ignore[operator]
        print(f'sampler, one batch of {args.batch} keys: uniform {plain:.3f} ms, trust-weighted '
              f'{weighted:.3f} ms (vs the uniform step {1000 * base:.0f} ms)')
    tmp.cleanup()


if __name__ == '__main__':
    main()
