"""Issue 30's "done when", as a sweep: every command against every kind of bad path and bad file
-- missing, a folder where a file goes, a file where a folder goes, empty, binary, JSON of the
wrong shape, a dangling symlink, a place nothing can be written (/proc) -- ends in one line and
exit 2 (exit 1 and one ``failed:`` line for a bag that ingest skips; or a clean result),
never a traceback, and changes none of the user's files.

Runs in-process through ``ptr_cli.main.main`` (an uncaught exception fails the test with its
traceback); the inputs are real files and folders. A trained checkpoint and a real dataset are
made once (tiny) so that each command reaches the part that reads the bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ptr_cli.main import main

pytest.importorskip('torch')


@pytest.fixture(scope='module')
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from ptr_core.configuration import load_config
    from ptr_core.synthetic import make_synthetic_dataset
    from ptr_core.trainer import train

    root = tmp_path_factory.mktemp('good')
    data = root / 'ds'
    make_synthetic_dataset(data, robot='arm', episodes=4, length=12, state_dim=3, seed=1)
    result = train(load_config(None, [
        'steps=1', 'batch_size=4', 'device=cpu', 'log_every=1', 'val_every=0',
        'policy.chunk_length=4', 'data.obs_horizon=2', 'data.val_fraction=0.0',
        'data.num_workers=0', ('data.datasets', [str(data)]), ('out_dir', str(root / 'run')),
        'policy.unet_dims=[16, 32]',
    ]))
    assert result.final is not None
    profile = root / 'profile.yaml'
    profile.write_text('robot: r\nrate_hz: 10\njoints: [j1]\nstate_topic: /js\n'
                       'action: {source: next_state}\njoint_limits: {lower: [-1], upper: [1]}\n')
    return {'data': data, 'ckpt': Path(result.final), 'profile': profile, 'root': root}


def bad_paths(tmp: Path) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every bad input this sweep feeds where a file or folder is expected."""
    yield 'missing', tmp / 'missing'
    (tmp / 'folder').mkdir()
    yield 'a folder', tmp / 'folder'
    (tmp / 'empty.json').write_text('')
    yield 'empty', tmp / 'empty.json'
    (tmp / 'binary.json').write_bytes(bytes(range(256)) * 4)
    yield 'binary', tmp / 'binary.json'
    (tmp / 'list.json').write_text('[1, 2, 3]')
    yield 'a JSON list', tmp / 'list.json'
    (tmp / 'nested.json').write_text('{"a": ' * 50000 + '1' + '}' * 50000)
    yield 'deep JSON', tmp / 'nested.json'
    (tmp / 'dangling').symlink_to(tmp / 'nowhere')
    yield 'a dangling symlink', tmp / 'dangling'
    folder = tmp / 'fake_dataset'
    folder.mkdir()
    (folder / 'manifest.json').write_text('{"schema_version": "x", "robots": [], "episodes": 3}')
    yield 'a crafted manifest', folder
    ckpt = tmp / 'fake_ckpt'
    ckpt.mkdir()
    (ckpt / 'config.json').write_text('{"format": "ptr.checkpoint", "train_config": 5}')
    yield 'a crafted checkpoint', ckpt


def commands(good: dict[str, Path], bad: Path, out: Path) -> list[list[str]]:
    """Each command with ``bad`` in one of its path arguments."""
    d, c, p = str(good['data']), str(good['ckpt']), str(good['profile'])
    b, o = str(bad), str(out)
    return [
        ['inspect', b],
        ['ingest', b, '--profile', p, '--out', o],
        ['ingest', str(good['root']), '--profile', b, '--out', o],
        ['export', b, '--out', o],
        ['export', d, '--out', o, '--trust', b],
        ['report', b, '--out', o],
        ['report', d, '--out', o, '--trust', b],
        ['train', '--config', b, '--dataset', d, '--out', o, '--set', 'steps=2'],
        ['train', '--config', 'config/train/debug.yaml', '--dataset', b, '--out', o],
        ['train', '--config', 'config/train/debug.yaml', '--dataset', d, '--out', o,
         '--trust', b],
        ['train', '--config', 'config/train/debug.yaml', '--dataset', d, '--out', o,
         '--init', b],
        ['eval', b, d],
        ['eval', c, b],
        ['weights', b, d],
        ['score', b, '--init', c, '--out', o + '.json'],
        ['score', d, '--init', b, '--out', o + '.json'],
    ]


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file() and p.name != '.ptr-writer.lock'}


def test_no_bad_input_gives_a_traceback_or_touches_the_users_files(
        good: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = {k: digest(v) for k, v in good.items() if v.is_dir()}
    runs = 0
    failures: list[str] = []
    inputs = tmp_path / 'inputs'
    inputs.mkdir()
    for kind, bad in bad_paths(inputs):
        for j in range(len(commands(good, bad, tmp_path))):
            argv = commands(good, bad, tmp_path / f'out-{runs}')[j]  # a fresh output each
            capsys.readouterr()
            code = main([*argv, '--no-progress'] if _takes_progress(argv[0]) else argv)
            err = capsys.readouterr().err
            runs += 1
            errors = [ln for ln in err.splitlines() if ': error: ' in ln]
            if code == 1:  # ingest: the bag failed, the run went on (one line per bag)
                errors = [ln for ln in err.splitlines() if ln.startswith('failed: ')]
            if code != 0 and len(errors) != 1:
                failures.append(f'{kind}: {argv}: exit {code}, {len(errors)} error lines: '
                                f'{err[-600:]}')
    assert not failures, f'{len(failures)} of {runs} did not end in one line:\n' + \
        '\n'.join(failures)
    assert runs >= 140
    after = {k: digest(v) for k, v in good.items() if v.is_dir()}
    assert after == before  # no command changed the user's dataset, checkpoint or run


def _takes_progress(command: str) -> bool:
    return command in ('ingest', 'export', 'train', 'weights', 'score')


def test_outputs_nothing_can_be_written_to_are_one_line(
        good: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """/proc takes no new files even from root: a real failing write for every writer."""
    d, c, p = str(good['data']), str(good['ckpt']), str(good['profile'])
    nowhere = '/proc/ptr-sweep/out'
    for argv in (['ingest', str(good['root']), '--profile', p, '--out', nowhere],
                 ['export', d, '--out', nowhere], ['report', d, '--out', nowhere],
                 ['train', '--config', 'config/train/debug.yaml', '--dataset', d, '--out',
                  nowhere, '--set', 'steps=1'],
                 ['eval', c, d, '--json', nowhere + '.json'],
                 ['score', d, '--init', c, '--out', nowhere + '.json']):
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ': error: ' in ln]
        assert code == 2, (argv, err[-800:])
        assert len(lines) == 1, (argv, err[-800:])
        assert '/proc/ptr-sweep' in lines[0], (argv, lines)
