"""PTR under DDP: two gloo CPU processes equal one process on the same global batch.

The test runs this file as a script in two processes (``--rank``); each trains the stand-in
policy + PTR weighter, wrapped together in ``DistributedDataParallel``, for three steps on its
half of fixed global batches and writes its weights, losses, candidate counts, gradients, final
parameters and weighter state as safetensors. The test compares them with a one-process run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))

from test_ptr_weighter import StandInPolicy, make_batch

from ptr_core.weighting.base import weighted_mean
from ptr_core.weighting.ptr import PTRWeighter

GLOBAL_B = 16
STEPS = 3
OPTIONS: dict[str, dict[str, Any]] = {
    'action': {'warmup_steps': 1, 'score_mode': 'action', 'controller_every': 1},
    'future': {'warmup_steps': 1, 'score_mode': 'future', 'queue_size': 64,
               'queue_draws': 8, 'controller_every': 1, 'r_hard_max': 0.5,
               'smoothing': 'episode'},
}


class Both(nn.Module):
    def __init__(self, policy: StandInPolicy, weighter: PTRWeighter) -> None:
        super().__init__()
        self.policy = policy
        self.weighter = weighter

    def forward(self, batch: dict[str, Tensor], step: int) -> tuple[Any, Any]:
        out = self.policy.forward_train(batch)
        return out, self.weighter(batch, out, step)


def run(mode: str, rank: int, world: int) -> dict[str, Tensor]:
    """Train STEPS steps on this rank's rows of the global batches; return what to compare."""
    torch.manual_seed(0)
    policy = StandInPolicy()
    weighter = PTRWeighter.from_options(OPTIONS[mode])
    weighter.bind(policy)
    # a controller that has already seen high accuracy, so hard negatives are drawn
    weighter.controller.observe(0.9, 0.5, 1.0, 1.0)
    weighter.controller.adapt()
    module: nn.Module = Both(policy, weighter)
    distributed = world > 1
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(module, broadcast_buffers=False,
                                         find_unused_parameters=True)
    params = [p for p in Both(policy, weighter).parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1)
    g = torch.Generator().manual_seed(1)
    n = GLOBAL_B // world
    result: dict[str, Tensor] = {}
    for step in range(STEPS):
        full = make_batch(GLOBAL_B, g)
        full['future_valid'][step] = False  # one sample without a future per step
        batch = {k: v[rank * n:(rank + 1) * n] for k, v in full.items()}
        out, wout = module(batch, step)
        loss = weighted_mean(out.loss, wout.weights, distributed=distributed) + wout.aux_loss
        opt.zero_grad()
        loss.backward()
        if distributed:
            import torch.distributed as dist

            total = loss.detach().clone()
            dist.all_reduce(total)
            loss = total / world
            weights = [torch.empty_like(wout.weights) for _ in range(world)]
            dist.all_gather(weights, wout.weights)
            all_w = torch.cat(weights)
        else:
            all_w = wout.weights
        result[f'loss{step}'] = loss.detach().reshape(1)
        result[f'weights{step}'] = all_w
        result[f'candidates{step}'] = torch.tensor([wout.metrics['candidates']])
        result[f'ess{step}'] = torch.tensor([wout.metrics['ess']])
        for name, p in policy.named_parameters():
            if p.grad is not None:
                result[f'grad{step}.policy.{name}'] = p.grad.clone()
        for name, p in weighter.named_parameters():
            if p.grad is not None:
                result[f'grad{step}.weighter.{name}'] = p.grad.clone()
        opt.step()
        weighter.after_step(batch, out, step)
    for name, value in weighter.state_dict().items():
        result[f'state.{name}'] = value.clone()
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize('mode', ['action', 'future'])
def test_two_process_ddp_equals_one_process(mode: str, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    port = _free_port()
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path.cwd())}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, '--mode', mode, '--rank', str(r), '--port', str(port),
             '--out', str(tmp_path / f'rank{r}.safetensors')],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=300)
        assert p.returncode == 0, output
    torch.set_num_threads(1)
    single = run(mode, 0, 1)
    ranks = [load_file(str(tmp_path / f'rank{r}.safetensors')) for r in range(2)]
    for step in range(STEPS):
        # the pool holds the global batch: |Y| counts every rank's samples
        expected = GLOBAL_B if mode == 'action' else None
        if expected is not None:
            assert ranks[0][f'candidates{step}'].item() == expected
        for r in ranks:
            assert r[f'candidates{step}'].item() == pytest.approx(
                single[f'candidates{step}'].item())
            torch.testing.assert_close(r[f'weights{step}'], single[f'weights{step}'],
                                       rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(r[f'loss{step}'], single[f'loss{step}'],
                                       rtol=1e-5, atol=1e-6)
        assert single[f'weights{step}'].std() > 0 or step == 0
        grads = [k for k in single if k.startswith(f'grad{step}.')]
        assert any('.weighter.scorer' in k for k in grads)
        for key in grads:
            for r in ranks:
                torch.testing.assert_close(r[key], single[key], rtol=1e-4, atol=1e-6,
                                           msg=lambda m, key=key: f'{key}: {m}')
    for key in (k for k in single if k.startswith('state.')):
        for r in ranks:
            torch.testing.assert_close(r[key], single[key], rtol=1e-4, atol=1e-5,
                                       msg=lambda m, key=key: f'{key}: {m}')
    if mode == 'future':
        assert single['state.queue.count'].item() == STEPS * GLOBAL_B - STEPS


def _main() -> None:
    import argparse

    from safetensors.torch import save_file

    parser = argparse.ArgumentParser()
    parser.add_argument('--mode', required=True)
    parser.add_argument('--rank', type=int, required=True)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--out', required=True)
    args = parser.parse_args()
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{args.port}',
                            rank=args.rank, world_size=2)
    try:
        result = run(args.mode, args.rank, 2)
        save_file({k: v.contiguous() for k, v in result.items()}, args.out)
    finally:
        dist.destroy_process_group()


if __name__ == '__main__':
    _main()
