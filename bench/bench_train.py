"""Training throughput and peak memory of both heads at a realistic size; loader throughput.

Setup: a synthetic dataset in the real on-disk format with 2 cameras at 96×96, To = 2, L = 16,
the ``config/train/uniform.yaml`` model size. For each head, one child process (so peak memory
is per head) measures:

- ``step samples/s``: forward (policy + uniform weighter) + backward + AdamW + EMA on batches
  already on the device — what the accelerator consumes;
- ``loader samples/s``: the ``DataLoader`` alone (workers, pinned memory) — what it supplies;
  the loader must supply >= 3x what the step consumes (``ratio``);
- peak memory: CUDA ``max_memory_allocated`` on a GPU, peak RSS of the process on CPU.

On CUDA the same script runs with bf16 autocast and ``torch.compile`` (``--compile``, default on
for CUDA). Usage::

    .venv/bin/python bench/bench_train.py                     # CPU here
    python bench/bench_train.py --device cuda --batch-size 64  # a GPU machine
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _measure(args: argparse.Namespace, dataset: str, head: str, label: str, out: Any) -> None:
    import torch

    from ptr_core import batch as K
    from ptr_core.configuration import load_config
    from ptr_core.data import MixtureSampler, build_data, make_loader
    from ptr_core.devices import autocast as _autocast
    from ptr_core.devices import resolve_device
    from ptr_core.policies import build_policy
    from ptr_core.preprocess import finish_images
    from ptr_core.threads import use_threads
    from ptr_core.trainer import EMA, TrainModule
    from ptr_core.weighting import build_weighter, weighted_mean

    use_threads(args.threads)  # 0: the library's default, what a user gets
    device = resolve_device(args.device)
    cfg = load_config(REPO / 'config/train/uniform.yaml', [
        f"data.datasets=['{dataset}']", f'policy.head={head}', f'batch_size={args.batch_size}',
        f'data.num_workers={args.workers}', 'data.val_fraction=0.0',
        f'amp={"auto" if args.amp else "none"}', f'compile={str(args.compile).lower()}',
    ])
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    bundle.train.defer_uint8 = True  # as the trainer does: uint8 across the worker boundary
    sampler = MixtureSampler(bundle.train.sizes, bundle.weights, batch_size=cfg.batch_size,
                             seed=0)
    loader = make_loader(bundle.train, sampler, batch_size=cfg.batch_size, config=cfg.data,
                         device=device)

    # the loader alone
    it = iter(loader)
    next(it)  # worker start-up
    start = time.perf_counter()
    for _ in range(args.loader_batches):
        next(it)
    loader_rate = args.loader_batches * cfg.batch_size / (time.perf_counter() - start)
    batches = [finish_images({k: v.to(device, non_blocking=True) for k, v in next(it).items()})
               for _ in range(2)]
    del it

    torch.manual_seed(0)
    policy = build_policy(cfg.policy, bundle.preprocessor).to(device)
    weighter = build_weighter('uniform', {})
    weighter.bind(policy)
    module = TrainModule(policy, weighter)
    model: Any = torch.compile(module) if cfg.compile else module
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    ema = EMA(policy, 0.999)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)

    def step(i: int) -> None:
        batch = batches[i % 2]
        with _autocast(cfg, device):
            o, w = model(batch, i)
            loss = weighted_mean(o.loss.float(), w.weights) + w.aux_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        ema.update(policy, i)

    for i in range(args.warmup):
        step(i)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    step_rate = args.steps * cfg.batch_size / (time.perf_counter() - start)
    if device.type == 'cuda':
        peak = torch.cuda.max_memory_allocated(device) / 2**20
        where = 'GPU'
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB
        where = 'RSS'
    params = sum(p.numel() for p in policy.parameters()) / 1e6
    key = K.obs_image_key('front')
    images = tuple(batches[0][key].shape) if key in batches[0] else ()
    out.put({
        'head': label, 'device': str(device), 'amp': bool(args.amp and device.type == 'cuda'),
        'compile': cfg.compile, 'params_m': params, 'batch': cfg.batch_size,
        'step_rate': step_rate, 'loader_rate': loader_rate, 'peak_mib': peak, 'mem': where,
        'images': images,
    })


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='auto')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--loader-batches', type=int, default=10)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--threads', type=int, default=0,
                        help="torch CPU threads per process (0: ptr's default, half the cores)")
    parser.add_argument('--heads', nargs='+', default=['diffusion', 'flow'])
    parser.add_argument('--state-only', action=argparse.BooleanOptionalAction, default=True,
                        help='also measure a state-only flow policy (the simulator benchmark)')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction, default=None,
                        help='torch.compile (default: on for CUDA)')
    parser.add_argument('--amp', action=argparse.BooleanOptionalAction, default=True,
                        help='bf16 autocast on CUDA')
    args = parser.parse_args()
    import torch

    cuda = args.device.startswith('cuda') or (args.device == 'auto'
                                              and torch.cuda.is_available())
    if args.compile is None:
        args.compile = cuda

    from ptr_core.synthetic import make_synthetic_dataset

    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / 'bench'
        make_synthetic_dataset(ds, robot='arm', episodes=16, length=80, state_dim=7,
                               cameras=('front', 'wrist'), image_size=(96, 96))
        runs = [(str(ds), head, head) for head in args.heads]
        if args.state_only:
            plain = Path(tmp) / 'state'
            make_synthetic_dataset(plain, robot='arm', episodes=16, length=80, state_dim=7)
            runs.append((str(plain), 'flow', 'flow/state'))
        ctx = mp.get_context('spawn')
        rows = []
        for data, head, label in runs:
            q = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(args, data, head, label, q))
            proc.start()
            rows.append(q.get())
            proc.join()
    print(f'\nptr training benchmark: 2 cameras 96x96 (flow/state: none), To=2, L=16, state 7, '
          f'batch {args.batch_size}, {args.workers} loader workers, torch {torch.__version__}')
    header = (f'| {"head":<10} | {"device":<6} | {"bf16":<4} | {"compile":<7} | {"params":>7} | '
              f'{"step samples/s":>14} | {"loader samples/s":>16} | {"ratio":>5} | '
              f'{"peak memory":>15} |')
    print(header)
    print('|' + '|'.join('-' * (len(c)) for c in header.split('|')[1:-1]) + '|')
    ok = True
    for r in rows:
        ratio = r['loader_rate'] / r['step_rate']
        ok &= ratio >= 3.0
        print(f'| {r["head"]:<10} | {r["device"]:<6} | {"yes" if r["amp"] else "no":<4} | '
              f'{"yes" if r["compile"] else "no":<7} | {r["params_m"]:>6.2f}M | '
              f'{r["step_rate"]:>14.1f} | {r["loader_rate"]:>16.1f} | {ratio:>5.1f} | '
              f'{r["peak_mib"]:>8.0f} MiB {r["mem"]:<3} |')
    print(f'loader >= 3x step consumption: {"yes" if ok else "NO"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
