"""`ptr train` and `ptr eval` on the faults of the issue: a resume that silently changes the run's
data, trust or method; two trainers in one run directory; a full disk leaving 0-byte or half
files; dataset paths with quotes, backslashes, colons and spaces; a vocab.json that is a list;
NaN, infinite and inverted joint limits. Real processes, real files, tiny datasets."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip('torch')

from bag_tools.dataset import Dataset
from bag_tools.trust import EpisodeTrust, dataset_content_hash, make_trust_file, write_trust
from ptr_core.checkpoint import load_checkpoint
from ptr_core.configuration import load_config
from ptr_core.errors import CheckpointError, ConfigError
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.trainer import train

PTR = str(Path(sys.executable).with_name('ptr'))
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
ODD = 'we\\ird "quoted" it\'s: a set'  # a backslash, both quote kinds, spaces, a colon
# A file system that is full after LIMIT bytes of any one file: the kernel's RLIMIT_FSIZE makes
# every write past it fail (EFBIG) exactly where a full disk would fail with ENOSPC.
FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from ptr_cli.main import main
    sys.exit(main(sys.argv[2:]))
""")
FAST = ['--no-progress', '--set', 'val_every=0', '--set', 'device=cpu']


def ptr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PTR, *args], capture_output=True, text=True, timeout=timeout,
                          env=ENV, check=False)


def error_line(got: subprocess.CompletedProcess[str], command: str) -> str:
    """The one error line of a failed command (log lines aside); no traceback."""
    assert got.returncode == 2, got.stderr[-3000:]
    assert 'Traceback' not in got.stderr, got.stderr[-3000:]
    errors = [x for x in got.stderr.splitlines() if x.startswith(f'ptr {command}: error:')]
    assert len(errors) == 1, got.stderr[-3000:]
    return errors[0]


def train_cli(repo: Path, out: Path, *extra: str) -> list[str]:
    return ['train', '--config', str(repo / 'config/train/debug.yaml'), '--out', str(out),
            *FAST, *extra]


def config(repo: Path, datasets: Sequence[Path], out: Path, *extra: str) -> Any:
    """The debug config for ``datasets``, seconds on a CPU (paths quoted as JSON, valid YAML)."""
    return load_config(repo / 'config/train/debug.yaml', [
        'steps=4', 'save_every=2', 'log_every=2', 'val_every=0', 'device=cpu',
        f'data.datasets={json.dumps([str(d) for d in datasets])}',
        f'out_dir={json.dumps(str(out))}', *extra,
    ])


def with_trust(trust: Path) -> str:
    return f'data.trust={json.dumps(str(trust))}'


def trust_file(data: Path, path: Path, *, odd_out: bool = False) -> Path:
    """A trust file for ``data``: every other episode trusted, or (``odd_out``) the others."""
    ds = Dataset.open(data)
    digest = dataset_content_hash(ds)
    eps = [EpisodeTrust(digest, e['id'], trust=float((i + odd_out) % 2 == 0), score=0.0, fold=0,
                        frame_trust=np.ones(e['length']))
           for i, e in enumerate(ds.manifest['episodes'])]
    return write_trust(path, make_trust_file({'w_min': 0.0}, [(ds, eps)]))


def metric_steps(out: Path) -> list[int]:
    return [json.loads(x)['step'] for x in (out / 'metrics.jsonl').read_text().splitlines()]


@pytest.fixture(scope='module')
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two small datasets of one robot."""
    root = tmp_path_factory.mktemp('train')
    make_synthetic_dataset(root / 'a', episodes=4, length=20, seed=1)
    make_synthetic_dataset(root / 'b', episodes=4, length=20, seed=2)
    return root / 'a', root / 'b'


@pytest.fixture(scope='module')
def final(data: tuple[Path, Path], repo_root: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('eval') / 'run'
    return train(config(repo_root, [data[0]], out)).final  # type: ignore[return-value]


# -- item 12: paths reach the config as they are --------------------------------------------

def test_odd_dataset_trust_and_out_paths_train(repo_root: Path, tmp_path: Path) -> None:
    """Paths went into YAML through repr(): a backslash doubled, both quote kinds refused."""
    data = tmp_path / ODD
    make_synthetic_dataset(data, episodes=4, length=20)
    trust = trust_file(data, tmp_path / f'{ODD}.trust.json')
    out = tmp_path / f'run {ODD}'
    got = ptr(*train_cli(repo_root, out, '--dataset', str(data), '--trust', str(trust),
                         '--set', 'steps=2', '--set', 'save_every=2'))
    assert got.returncode == 0, got.stderr[-3000:]
    saved = json.loads((out / 'config.json').read_text())
    assert saved['data']['datasets'] == [{'path': str(data), 'weight': 1.0}]
    assert saved['weighter']['name'] == 'uniform'
    assert saved['data']['trust'] == str(trust)
    assert (out / 'final').is_dir()


def test_values_are_applied_as_they_are() -> None:
    cfg = load_config(None, [('data.datasets', [ODD]), ('out_dir', ODD), 'steps=3'])
    assert cfg.data.datasets[0].path == ODD
    assert cfg.out_dir == ODD
    assert cfg.steps == 3


# -- item 5: a resume that changes data, trust or method is refused unless asked for ---------

def test_resume_with_other_datasets_is_refused(data: tuple[Path, Path], repo_root: Path,
                                               tmp_path: Path) -> None:
    a, b = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    before = {f: (out / f).read_bytes() for f in ('metrics.jsonl', 'run.json', 'config.json')}
    with pytest.raises(ConfigError) as err:
        train(config(repo_root, [b], out, 'steps=6'), resume=True)
    msg = str(err.value)
    assert '\n' not in msg
    assert f'{out}: --resume would change the run: datasets [{str(a)!r}] -> [{str(b)!r}]' in msg
    assert '--allow-change' in msg
    assert {f: (out / f).read_bytes() for f in before} == before  # nothing written


def test_resume_that_drops_the_trust_file_is_refused(data: tuple[Path, Path], repo_root: Path,
                                                     tmp_path: Path) -> None:
    """Without --trust the run would turn uniform mid-way."""
    a, _ = data
    trust = trust_file(a, tmp_path / 'a.trust.json')
    out = tmp_path / 'run'
    train(config(repo_root, [a], out, with_trust(trust)))
    with pytest.raises(ConfigError, match=(
            rf'trust file {re.escape(str(trust))} -> none; pass --allow-change')):
        train(config(repo_root, [a], out, 'steps=6'), resume=True)


def test_resume_with_a_changed_trust_file_is_refused(data: tuple[Path, Path], repo_root: Path,
                                                     tmp_path: Path) -> None:
    """Same path, other content (`ptr score` run again): the sampling would change."""
    a, _ = data
    trust = trust_file(a, tmp_path / 'a.trust.json')
    out = tmp_path / 'run'
    weighter = with_trust(trust)
    train(config(repo_root, [a], out, weighter))
    trust_file(a, trust, odd_out=True)
    with pytest.raises(ConfigError, match=rf'trust file {re.escape(str(trust))} content sha256 '
                                          r'\w{12} -> \w{12}; pass --allow-change'):
        train(config(repo_root, [a], out, weighter, 'steps=6'), resume=True)


def test_a_run_recorded_when_trust_was_a_weighter_resumes(data: tuple[Path, Path],
                                                         repo_root: Path, tmp_path: Path) -> None:
    """run.json of a run started before trust became the data's (``weighter: trust``) reads
    as the same inputs, and the same run resumes without --allow-change."""
    a, _ = data
    trust = trust_file(a, tmp_path / 'a.trust.json')
    out = tmp_path / 'run'
    train(config(repo_root, [a], out, with_trust(trust)))
    record = json.loads((out / 'run.json').read_text())
    for key in ('started_with', 'current'):
        old = record[key]
        old['weighter'] = {'name': 'trust', 'options': {'apply': old['trust'].pop('apply'),
                                                        'level': old['trust'].pop('level')}}
    (out / 'run.json').write_text(json.dumps(record))
    assert train(config(repo_root, [a], out, with_trust(trust), 'steps=6'),
                 resume=True).step == 6
    loss = 'data.trust_apply=loss'
    with pytest.raises(ConfigError, match=r'trust applied by sampling/episode -> loss/episode'):
        train(config(repo_root, [a], out, with_trust(trust), loss, 'steps=8'), resume=True)


def test_allow_change_records_the_change(data: tuple[Path, Path], repo_root: Path,
                                         tmp_path: Path) -> None:
    a, b = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    result = train(config(repo_root, [b], out, 'steps=6'), resume=True, allow_change=True)
    assert result.step == 6
    record = json.loads((out / 'run.json').read_text())
    assert record['started_with']['datasets'] == [{'path': str(a.resolve()), 'weight': 1.0}]
    assert record['current']['datasets'] == [{'path': str(b.resolve()), 'weight': 1.0}]
    [change] = record['changes']
    assert change['step'] == 4
    assert change['changed'] == {'datasets': {'old': record['started_with']['datasets'],
                                              'new': record['current']['datasets']}}
    # the changed run goes on with its new inputs without asking again
    train(config(repo_root, [b], out, 'steps=8'), resume=True)
    assert len(json.loads((out / 'run.json').read_text())['changes']) == 1
    assert metric_steps(out) == [2, 4, 6, 8]


def test_resume_with_the_same_inputs_spelled_otherwise(data: tuple[Path, Path],
                                                       repo_root: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    monkeypatch.chdir(a.parent)
    assert train(config(repo_root, [Path(a.name)], out, 'steps=6'), resume=True).step == 6


def test_cli_refuses_a_changed_resume_in_one_line(data: tuple[Path, Path], repo_root: Path,
                                                  tmp_path: Path) -> None:
    a, b = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    got = ptr(*train_cli(repo_root, out, '--dataset', str(b), '--resume', '--set', 'steps=6'))
    line = error_line(got, 'train')
    assert f'datasets [{str(a)!r}] -> [{str(b)!r}]' in line
    assert metric_steps(out) == [2, 4]


# -- item 6: one writer per run directory ------------------------------------------------------

def test_one_trainer_per_run_dir_and_a_killed_one_does_not_block(
        data: tuple[Path, Path], repo_root: Path, tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    first = subprocess.Popen(
        [PTR, *train_cli(repo_root, out, '--dataset', str(a), '--set', 'steps=100000',
                         '--set', 'save_every=2', '--set', 'log_every=2')],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not list((out / 'checkpoints').glob('step_*')):
            assert first.poll() is None
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second = ptr(*train_cli(repo_root, out, '--dataset', str(a), '--resume',
                                '--set', 'save_every=2', '--set', 'log_every=2'))
        line = error_line(second, 'train')
        assert f'{out}: pid {first.pid} (ptr train' in line
        assert 'is writing here' in line
        assert first.poll() is None  # the first one trains on
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (out / '.ptr-writer.lock').exists()  # left behind by the killed trainer ...
    last = max(int(p.name[5:]) for p in (out / 'checkpoints').glob('step_*'))
    again = ptr(*train_cli(repo_root, out, '--dataset', str(a), '--resume', '--set',
                           f'steps={last + 2}', '--set', 'save_every=2', '--set', 'log_every=2'))
    assert again.returncode == 0, again.stderr[-3000:]  # ... and blocks nobody
    steps = metric_steps(out)
    assert steps == sorted(set(steps))  # no duplicated rows
    assert steps[-1] == last + 2


def test_a_row_a_killed_trainer_left_half_written_is_dropped(
        data: tuple[Path, Path], repo_root: Path, tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    with (out / 'metrics.jsonl').open('a') as f:
        f.write('{"step": 5, "loss": 1.2')  # killed inside the write
    train(config(repo_root, [a], out, 'steps=6'), resume=True)
    assert metric_steps(out) == [2, 4, 6]


# -- item 11: every file whole or not at all; a write failure is one line ------------------

def full_disk(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, '-c', FULL_DISK, str(limit), *args],
                          capture_output=True, text=True, timeout=300, env=ENV, check=False)


def no_partial_files(out: Path) -> None:
    assert not list(out.rglob('.tmp-*')), list(out.rglob('.tmp-*'))
    empty = [p for p in out.rglob('*') if p.is_file() and p.stat().st_size == 0
             and p.name != '.ptr-writer.lock']
    assert not empty, empty
    for f in out.rglob('*.json'):
        json.loads(f.read_text())


def test_a_full_disk_leaves_no_empty_config(data: tuple[Path, Path], repo_root: Path,
                                            tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    got = full_disk(200, *train_cli(repo_root, out, '--dataset', str(a), '--set', 'steps=4'))
    line = error_line(got, 'train')
    assert f'{out}/' in line
    assert ': cannot write: File too large' in line
    no_partial_files(out)


def test_a_full_disk_keeps_the_old_config_whole(data: tuple[Path, Path], repo_root: Path,
                                                tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    train(config(repo_root, [a], out))
    before = (out / 'config.json').read_bytes()
    assert len(before) > 1000
    got = full_disk(1000, *train_cli(repo_root, out, '--dataset', str(a), '--resume',
                                     '--set', 'steps=6', '--set', 'save_every=2',
                                     '--set', 'log_every=2'))
    assert error_line(got, 'train').endswith(f'{out / "config.json"}: cannot write: File too '
                                             'large')
    assert (out / 'config.json').read_bytes() == before
    no_partial_files(out)


def test_a_full_disk_leaves_no_half_metrics_row(data: tuple[Path, Path], repo_root: Path,
                                                tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    got = full_disk(4096, *train_cli(repo_root, out, '--dataset', str(a), '--set', 'steps=80',
                                     '--set', 'log_every=1', '--set', 'save_every=80'))
    assert error_line(got, 'train').endswith(f'{out / "metrics.jsonl"}: cannot write: File '
                                             'too large')
    steps = metric_steps(out)  # every row parses
    assert steps == list(range(1, len(steps) + 1))
    no_partial_files(out)


def test_a_full_disk_inside_a_checkpoint_leaves_no_temp(data: tuple[Path, Path],
                                                        repo_root: Path, tmp_path: Path) -> None:
    a, _ = data
    out = tmp_path / 'run'
    got = full_disk(200_000, *train_cli(repo_root, out, '--dataset', str(a), '--set',
                                        'steps=4', '--set', 'save_every=2'))
    line = error_line(got, 'train')
    assert f'{out / "checkpoints" / "step_00000002"}: cannot write the checkpoint:' in line
    assert 'File too large' in line
    assert not list((out / 'checkpoints').iterdir())
    no_partial_files(out)


# -- item 8 and item 12 (eval): what ptr eval reads from a checkpoint ------------------------

def edited_copy(final: Path, tmp_path: Path, name: str, value: Any) -> Path:
    """``final`` copied, ``name`` replaced by ``value`` (JSON), as an older checkpoint."""
    import shutil

    ckpt = tmp_path / 'ckpt'
    shutil.copytree(final, ckpt)
    (ckpt / 'checksums.json').unlink()  # edited by hand: no checksums to catch it
    meta = json.loads((ckpt / 'config.json').read_text())
    meta.pop('checksums', None)  # an older checkpoint does not say it had them
    (ckpt / 'config.json').write_text(json.dumps(meta))
    (ckpt / name).write_text(json.dumps(value))
    return ckpt


def test_vocab_json_as_a_list_is_one_line(final: Path, data: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    ckpt = edited_copy(final, tmp_path, 'vocab.json', ['reach'])
    with pytest.raises(CheckpointError, match=r'vocab\.json: expected a mapping'):
        load_checkpoint(ckpt)
    got = ptr('eval', str(ckpt), str(data[0]), '--max-windows', '4')
    assert error_line(got, 'eval') == (
        f'ptr eval: error: {ckpt / "vocab.json"}: expected a mapping '
        '{"tasks": [...], "sources": [...]}, got a list')


@pytest.mark.parametrize(('key', 'index', 'value', 'want'), [
    ('lower', 0, float('nan'), 'key joint_limits.lower[0]: expected a number, got nan'),
    ('upper', 1, float('inf'), 'key joint_limits.upper[1]: expected a number, got inf'),
    ('lower', 2, 3.0, 'key joint_limits.lower[2]: greater than the upper limit'),
])
def test_bad_joint_limits_are_refused(final: Path, tmp_path: Path, key: str, index: int,
                                      value: float, want: str) -> None:
    robots = json.loads((final / 'robots.json').read_text())
    name = next(iter(robots))
    robots[name]['profile']['joint_limits'][key][index] = value
    ckpt = edited_copy(final, tmp_path, 'robots.json', robots)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(ckpt)
    assert str(err.value) == f'{ckpt / "robots.json"}: robot {name!r}: profile: {want}'


def test_inverted_profile_limits_are_refused_by_eval(final: Path, data: tuple[Path, Path],
                                                     tmp_path: Path) -> None:
    robots = json.loads((final / 'robots.json').read_text())
    name = next(iter(robots))
    robots[name]['profile']['joint_limits']['lower'][0] = 5.0
    ckpt = edited_copy(final, tmp_path, 'robots.json', robots)
    got = ptr('eval', str(ckpt), str(data[0]), '--max-windows', '4')
    assert error_line(got, 'eval') == (
        f"ptr eval: error: {ckpt / 'robots.json'}: robot {name!r}: "
        'profile: key joint_limits.lower[0]: greater than the upper limit')


def test_eval_refuses_non_positive_counts(final: Path, data: tuple[Path, Path]) -> None:
    got = ptr('eval', str(final), str(data[0]), '--batch-size', '0')
    assert error_line(got, 'eval') == (
        'ptr eval: error: --batch-size: 0 is invalid; expected an integer >= 1')


def test_an_unwritable_report_is_one_line(final: Path, data: tuple[Path, Path],
                                          tmp_path: Path) -> None:
    report = tmp_path / 'no such folder' / 'eval.json'
    got = ptr('eval', str(final), str(data[0]), '--max-windows', '2', '--json', str(report))
    assert error_line(got, 'eval') == (
        f'ptr eval: error: {report}: cannot write: No such file or directory')
