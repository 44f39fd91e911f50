"""Checkpoints: a kill inside a save leaves no temp behind for good, weights are readable by
others (the umask's permissions), a flipped bit is refused, bad robots.json and shapes are
one line naming the file or tensor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip('torch')

from safetensors.torch import load_file, save_file

from ptr_core.checkpoint import load_checkpoint
from ptr_core.errors import CheckpointError
from ptr_core.synthetic import make_synthetic_dataset

PTR = str(Path(sys.executable).with_name('ptr'))
KILL_IN_SAVE = textwrap.dedent("""
    import os, signal, sys
    import ptr_core.checkpoint as checkpoint
    real, calls = checkpoint.save_file, []
    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # model written, ema not yet: inside the first checkpoint save
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoint.save_file = save_then_die
    from ptr_cli.main import main
    sys.exit(main(sys.argv[1:]))
""")


def train_args(repo: Path, data: Path, out: Path) -> list[str]:
    return ['train', '--config', str(repo / 'config/train/debug.yaml'), '--dataset', str(data),
            '--out', str(out), '--no-progress', '--set', 'steps=4', '--set', 'save_every=2',
            '--set', 'val_every=0', '--set', 'log_every=2', '--set', 'device=cpu']


@pytest.fixture(scope='module')
def run(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> tuple[Path, Path, Path]:
    """(dataset, run dir, final checkpoint); the run was first killed inside a save."""
    root = tmp_path_factory.mktemp('ckpt')
    data = root / 'data'
    make_synthetic_dataset(data, episodes=4, length=20)
    out = root / 'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    killed = subprocess.run([sys.executable, '-c', KILL_IN_SAVE,
                             *train_args(repo_root, data, out)],
                            capture_output=True, text=True, timeout=600, env=env, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    left = [p.name for p in (out / 'checkpoints').iterdir()]
    assert len(left) == 1
    assert left[0].startswith('.tmp-step_')  # what the issue found left there forever
    again = subprocess.run([PTR, *train_args(repo_root, data, out)], capture_output=True,
                           text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0, again.stderr[-2000:]
    return data, out, out / 'final'


def test_a_kill_inside_a_save_leaves_no_temp(run: tuple[Path, Path, Path]) -> None:
    _, out, final = run
    assert not list(out.rglob('.tmp-*'))
    assert final.is_dir()


def test_weights_get_the_umask_permissions(run: tuple[Path, Path, Path]) -> None:
    """Not safetensors' 0600: with the usual umask 022 a node of another user can read them."""
    _, _, final = run
    mask = os.umask(0o022)  # the training subprocess inherited this process's umask
    os.umask(mask)
    for f in final.rglob('*'):
        want = (0o777 if f.is_dir() else 0o666) & ~mask
        assert stat.S_IMODE(f.stat().st_mode) == want, f


def test_a_flipped_bit_is_refused_naming_the_file(run: tuple[Path, Path, Path],
                                                  tmp_path: Path) -> None:
    data, _, final = run
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(final, ckpt)
    load_checkpoint(ckpt)  # intact: loads
    weights = ckpt / 'ema.safetensors'
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0x10  # one bit of one weight: still a valid safetensors file
    weights.write_bytes(bytes(raw))
    load_file(str(weights))  # safetensors itself does not notice
    with pytest.raises(CheckpointError, match=r'ema\.safetensors: checksum mismatch'):
        load_checkpoint(ckpt)
    got = subprocess.run([PTR, 'eval', str(ckpt), str(data), '--max-windows', '4'],
                         capture_output=True, text=True, timeout=300, check=False)
    assert got.returncode == 2
    assert got.stderr.strip().splitlines() == [
        f'ptr eval: error: {weights}: checksum mismatch (sha256 differs from checksums.json): '
        'the file is corrupt or was changed; refusing to load it']


def as_older(ckpt: Path) -> None:
    """Make ``ckpt`` look written before checksums existed (no file, no mention of one)."""
    (ckpt / 'checksums.json').unlink()
    meta = json.loads((ckpt / 'config.json').read_text())
    del meta['checksums']
    (ckpt / 'config.json').write_text(json.dumps(meta))


def errors(stderr: str) -> list[str]:
    """The command's output lines but its log warnings (an older checkpoint is not verified)."""
    return [ln for ln in stderr.strip().splitlines() if not ln.startswith('WARNING ')]


def test_a_deleted_checksums_file_is_refused_and_an_older_checkpoint_warned(
        run: tuple[Path, Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 30, item 12: deleting checksums.json turned verification off without a word."""
    _, _, final = run
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(final, ckpt)
    (ckpt / 'checksums.json').unlink()
    with pytest.raises(CheckpointError, match=r'checksums\.json: missing, though this checkpoint '
                                              r'was written with it'):
        load_checkpoint(ckpt)
    meta = json.loads((ckpt / 'config.json').read_text())
    del meta['checksums']
    (ckpt / 'config.json').write_text(json.dumps(meta))
    with caplog.at_level('WARNING'):
        load_checkpoint(ckpt)
    assert 'its files are not verified' in caplog.text


def test_robots_json_with_wrong_limits_is_refused(run: tuple[Path, Path, Path],
                                                  tmp_path: Path) -> None:
    data, _, final = run
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(final, ckpt)
    as_older(ckpt)  # an older checkpoint (no checksums), edited by hand
    robots = json.loads((ckpt / 'robots.json').read_text())
    name = next(iter(robots))
    limits = robots[name]['profile']['joint_limits']
    limits['lower'] = limits['lower'][:-1]
    (ckpt / 'robots.json').write_text(json.dumps(robots))
    got = subprocess.run([PTR, 'eval', str(ckpt), str(data), '--max-windows', '4'],
                         capture_output=True, text=True, timeout=300, check=False)
    assert got.returncode == 2
    lines = errors(got.stderr)
    assert len(lines) == 1, lines
    assert (f'{ckpt / "robots.json"}: robot {name!r}: profile: key joint_limits.lower: expected '
            'a list of') in lines[0]


def test_a_shape_mismatch_names_the_tensor(run: tuple[Path, Path, Path],
                                           tmp_path: Path) -> None:
    data, _, final = run
    ckpt = tmp_path / 'ckpt'
    shutil.copytree(final, ckpt)
    as_older(ckpt)
    ema = load_file(str(ckpt / 'ema.safetensors'))
    key = next(k for k, v in ema.items() if v.ndim == 2)
    ema[key] = ema[key][:, :-1].contiguous()
    save_file(ema, str(ckpt / 'ema.safetensors'))
    got = subprocess.run([PTR, 'eval', str(ckpt), str(data), '--max-windows', '4'],
                         capture_output=True, text=True, timeout=300, check=False)
    assert got.returncode == 2
    lines = errors(got.stderr)
    assert len(lines) == 1, lines
    assert f'{key}: checkpoint (' in lines[0]
    assert 'ema.safetensors' in lines[0]
