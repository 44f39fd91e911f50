"""Resume after SIGKILL with PTR on: same weights, same controller state, queue and episode table.

Three real ``ptr train`` processes on a synthetic dataset: one uninterrupted, one killed with
SIGKILL after its first periodic checkpoint, then resumed with ``--resume``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ptr_core.run_dir import checkpoint_dirs
from ptr_core.synthetic import make_synthetic_dataset

STEPS = 24
OPTIONS = ('{score_mode: future, warmup_steps: 4, controller_every: 2, queue_size: 64, '
           'queue_draws: 16, smoothing: episode, center: true}')


def _cmd(repo: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, '-m', 'ptr_cli.main', 'train',
        '--config', str(repo / 'config' / 'train' / 'debug.yaml'),
        '--dataset', str(data), '--out', str(out), '--no-progress',
        '--set', f'steps={STEPS}', '--set', 'save_every=8', '--set', 'val_every=0',
        '--set', 'log_every=4', '--set', 'keep_last=5', '--set', 'device=cpu',
        '--set', 'weighter.name=ptr', '--set', f'weighter.options={OPTIONS}', *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(Path.cwd())}


@pytest.mark.slow
def test_resume_after_sigkill_restores_ptr_exactly(tmp_path: Path, repo_root: Path) -> None:
    data = tmp_path / 'data'
    make_synthetic_dataset(data, episodes=6, length=30, sources=('good', 'bad'))
    full, killed = tmp_path / 'full', tmp_path / 'killed'
    subprocess.run(_cmd(repo_root, data, full), check=True, env=_env(), cwd=repo_root,
                   capture_output=True, timeout=600)

    proc = subprocess.Popen(_cmd(repo_root, data, killed), env=_env(), cwd=repo_root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not checkpoint_dirs(killed) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    was_running = proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert was_running, 'the run ended before it could be killed; raise STEPS'
    assert not (killed / 'final').exists()
    subprocess.run(_cmd(repo_root, data, killed, '--resume'), check=True, env=_env(),
                   cwd=repo_root, capture_output=True, timeout=600)

    for name in ('model', 'weighter'):
        a = load_file(str(full / 'final' / f'{name}.safetensors'))
        b = load_file(str(killed / 'final' / f'{name}.safetensors'))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f'{name}: {key} differs after resume'
    w = load_file(str(full / 'final' / 'weighter.safetensors'))
    assert int(w['queue.count']) == 64  # the queue filled and wrapped
    assert int(w['controller.updates']) == STEPS
    assert float(w['controller.ema_margin']) != 0.0  # the controller's EMAs were restored too
    assert bool(w['episode_seen'].any())
