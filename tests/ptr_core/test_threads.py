"""The torch thread default (issue 27, item 0): half the cores this process may use, shared
among the local DDP ranks, at least one; a training config's ``threads`` overrides it, and the
``ptr`` command asks OpenMP to sleep rather than spin (kept when the user set it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip('torch')

from ptr_core.configuration import load_config  # noqa: E402
from ptr_core.errors import ConfigError  # noqa: E402
from ptr_core.threads import default_threads, use_threads  # noqa: E402


def test_half_the_cores_shared_among_local_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_threads() == max(1, cores // 2)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', str(2 * cores))
    assert default_threads() == 1


def test_use_threads_sets_torch_and_training_takes_the_configs(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        assert use_threads(3) == 3
        assert torch.get_num_threads() == 3
        assert use_threads(0) == default_threads()
        assert torch.get_num_threads() == default_threads()
    finally:
        torch.set_num_threads(before)
    assert load_config(None, ['threads=2']).threads == 2
    with pytest.raises(ConfigError, match='threads'):
        load_config(None, ['threads=-1'])


def test_the_command_prefers_passive_waits_and_keeps_the_users() -> None:
    code = ('import os; from ptr_cli.main import main; main(["inspect", "/nonexistent"]); '
            'print(os.environ.get("OMP_WAIT_POLICY"))')
    env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
    got = subprocess.run([sys.executable, '-c', code], env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    assert got.stdout.strip().splitlines()[-1] == 'PASSIVE'
    got = subprocess.run([sys.executable, '-c', code], env={**env, 'OMP_WAIT_POLICY': 'ACTIVE'},
                         capture_output=True, text=True, timeout=120, check=True)
    assert got.stdout.strip().splitlines()[-1] == 'ACTIVE'
