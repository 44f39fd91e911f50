"""PolicyRunner (the node's API), ``ptr train`` and ``ptr eval`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ptr_cli.main import main
from ptr_core.errors import PtrError
from ptr_core.inference import PolicyRunner


@pytest.fixture(scope='module')
def cli_run(state_dataset: Path, tmp_path_factory: pytest.TempPathFactory,
            repo_root: Path) -> Path:
    out = tmp_path_factory.mktemp('cli') / 'run'
    code = main(['train', '--config', str(repo_root / 'config/train/debug.yaml'),
                 '--dataset', str(state_dataset), '--out', str(out), '--no-progress',
                 '--set', 'steps=4', '--set', 'val_every=2', '--set', 'log_every=2',
                 '--set', 'policy.chunk_length=4', '--set', 'policy.head=diffusion'])
    assert code == 0
    return out / 'final'


def test_runner_api(cli_run: Path, state_dataset: Path) -> None:
    runner = PolicyRunner.from_checkpoint(cli_run, device='cpu')
    assert runner.robots == ['arm']
    assert runner.obs_horizon == 2
    assert runner.chunk_length == 4
    prof = runner.profile('arm')
    assert prof['joint_names'] == ['arm_joint0', 'arm_joint1', 'arm_joint2']
    assert prof['camera_roles'] == []
    assert prof['rate_hz'] == 10.0
    assert prof['profile']['robot'] == 'arm'  # a profile bag_tools' validator accepts
    state = np.zeros((5, 3), np.float32)  # longer history than To: the last To rows count
    first = runner.infer(state, {}, 'arm')
    assert first.shape == (4, 3)
    assert first.dtype == np.float32
    second = runner.infer(state, {}, 'arm')
    runner.reset()
    np.testing.assert_array_equal(runner.infer(state, {}, 'arm'), first)
    assert not np.array_equal(first, second)  # a fresh noise draw per call within an episode
    # physical units: actions lie in the recorded range (normalized ±clip_sample)
    assert np.all(np.abs(first) < 5.0)
    with pytest.raises(PtrError, match="unknown robot 'ghost'"):
        runner.profile('ghost')
    with pytest.raises(PtrError, match='state has 2 values, expected 3'):
        runner.infer(np.zeros((2, 2)), {}, 'arm')


def test_eval_cli_reports_per_robot(cli_run: Path, state_dataset: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / 'eval.json'
    code = main(['eval', str(cli_run), str(state_dataset), '--max-windows', '16',
                 '--json', str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert 'arm' in out
    assert 'ms/chunk' in out
    data = json.loads(report.read_text())
    assert data['robots'][0]['robot'] == 'arm'
    assert data['robots'][0]['windows'] == 16
    assert data['robots'][0]['mae'] > 0
    assert data['infer_ms_median'] > 0
    assert len(data['robots'][0]['mae_per_dim']) == 3


def test_cli_errors_are_one_line(tmp_path: Path, repo_root: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(['train', '--config', str(repo_root / 'config/train/debug.yaml'),
                 '--set', 'policy.encoder.chanels=[8]'])
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'policy.encoder.chanels'" in err
    assert err.count('\n') == 1
    (tmp_path / 'ck').mkdir()
    (tmp_path / 'ck' / 'model.pkl').write_bytes(b'\x80\x04N.')
    assert main(['eval', str(tmp_path / 'ck'), str(tmp_path)]) == 2
    assert 'never unpickles' in capsys.readouterr().err
