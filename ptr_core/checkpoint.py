"""Checkpoints: safetensors + JSON directories, written atomically, never pickles.

Layout::

    CHECKPOINT/
      config.json            format, schema version, git revision, step, resolved train config
      preprocess.json        layout (the one owner of the image size), normalizer, camera
                             channels, To (ptr_core.preprocess)
      robots.json            each robot as its record, the resolved profile (names, limits,
                             cameras, image size, rate), the rest derived on load
                             (bag_tools.robots); the robots share the layout's image size
      vocab.json             task and source-tag vocabularies
      model.safetensors      policy weights
      ema.safetensors        EMA policy weights (what inference uses by default)
      weighter.safetensors   the weighter's state (PTR: scorer, EMA target encoder, queue, ...)
      training_state/        exact resume: optimizer.safetensors + optimizer.json,
                             rng.safetensors, state.json (step, python/numpy RNG)
      checksums.json         sha256 of every other file, verified on load

A run directory holds ``checkpoints/step_<N>/`` (periodic, last ``keep_last`` kept) and ``final/``.
Loading checks that every weight file really is safetensors and refuses anything that looks like
a pickle (``.pt``/``.pth``/``.pkl``/``.ckpt``/``.bin`` or pickle/zip magic bytes) with a
``CheckpointError``: loading a checkpoint never executes code. A file whose sha256 differs from
``checksums.json`` (a flipped bit, a truncated copy) is refused naming the file. Files get the
umask's permissions (a node running as another user can read them). A save killed half-way
leaves a marked temp directory that the next save in the same folder removes; a save that fails
(a full disk, a read-only folder) removes its temp directory and raises one line naming the
checkpoint. ``write_file_atomic`` and ``append_line`` are how the trainer writes the other files
of a run directory: whole or not at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import random
import shutil
import struct
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from bag_tools.errors import DatasetError
from bag_tools.fileio import read_json, write_atomic
from bag_tools.lifetime import pid_alive
from bag_tools.robots import RobotEntry, read_robot, robot_record, shared_image_size
from ptr_core.configuration import SCHEMA_VERSION, TrainConfig, from_dict, to_dict
from ptr_core.errors import CheckpointError, ConfigError, PtrError
from ptr_core.preprocess import Preprocessor

__all__ = [
    'FORMAT',
    'Checkpoint',
    'append_line',
    'file_sha256',
    'load_checkpoint',
    'load_matching',
    'load_training_state',
    'read_json_file',
    'read_robots',
    'refuse_pickles',
    'save_checkpoint',
    'verify_checksums',
    'write_file_atomic',
]

log = logging.getLogger(__name__)

FORMAT = 'ptr-checkpoint'
CHECKSUMS = 'checksums.json'
TEMP_MARKER = '.ptr-temp'
PICKLE_SUFFIXES = ('.pt', '.pth', '.pkl', '.pickle', '.ckpt', '.bin', '.joblib')


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ['git', 'rev-parse', 'HEAD'], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return 'unknown'
    return out.stdout.strip() if out.returncode == 0 else 'unknown'


def _tensors(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()
            if isinstance(v, Tensor)}


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1))


# -- files ----------------------------------------------------------------------------------

def _cannot_write(path: Path, err: BaseException) -> str:
    reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
    return f'{path}: cannot write: {reason}'


def write_file_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``path`` whole or not at all (``bag_tools.fileio.write_atomic``); a failure (a full
    disk, a read-only folder) leaves an existing ``path`` as it was and raises ``PtrError``
    naming ``path``."""
    write_atomic(path, data, error=PtrError)


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` (and a newline) to ``path`` whole or not at all: a failed write is cut
    back off, so the file never ends in a partial record; raises ``PtrError`` naming ``path``."""
    path = Path(path)
    raw = memoryview(line.encode() + b'\n')
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                while raw:
                    raw = raw[os.write(fd, raw):]
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
    except OSError as err:
        raise PtrError(_cannot_write(path, err)) from err


# -- safety ---------------------------------------------------------------------------------

def _check_safetensors(file: Path) -> None:
    """Refuse a file that is not a safetensors container (pickles start with 0x80, zips PK)."""
    try:
        with file.open('rb') as f:
            head = f.read(9)
    except OSError as err:
        msg = f'{file}: cannot read: {err.strerror}'
        raise CheckpointError(msg) from err
    if len(head) < 9 or head[8:9] != b'{' or struct.unpack('<Q', head[:8])[0] > 100_000_000:
        kind = ('a pickle' if head[:1] == b'\x80' else 'a zip/torch.save archive'
                if head[:2] == b'PK' else 'not safetensors')
        msg = (f'{file}: refusing to load: the file is {kind}; ptr loads only safetensors + '
               f'JSON and never unpickles')
        raise CheckpointError(msg)


def refuse_pickles(path: Path) -> None:
    """Raise ``CheckpointError`` if ``path`` is, or contains, anything pickle-like."""
    if path.is_file():
        msg = (f'{path}: a checkpoint is a directory of safetensors + JSON; refusing to load '
               f'a single file (pickled checkpoints are never loaded)')
        raise CheckpointError(msg)
    for file in sorted(path.rglob('*')):
        if file.suffix.lower() in PICKLE_SUFFIXES:
            msg = (f'{file}: refusing to load a checkpoint containing a pickle-format file; '
                   f'ptr loads only safetensors + JSON and never unpickles')
            raise CheckpointError(msg)
        if file.suffix == '.safetensors':
            _check_safetensors(file)


def _load_tensors(file: Path) -> dict[str, Tensor]:
    _check_safetensors(file)
    try:
        return load_file(str(file))
    except Exception as err:  # safetensors raises its own error types
        msg = f'{file}: corrupt safetensors file: {err}'
        raise CheckpointError(msg) from err


def read_json_file(file: Path) -> Any:
    """A checkpoint's JSON file; unreadable or malformed is a ``CheckpointError`` naming it."""
    return read_json(file, 'checkpoint JSON file', want=None, error=CheckpointError,
                     missing=f'{file.parent}: not a ptr checkpoint (no {file.name})')


# -- saving ---------------------------------------------------------------------------------

def _optimizer_files(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    meta: dict[str, Any] = {'param_groups': sd['param_groups'], 'state': {}}
    for pid, st in sd['state'].items():
        meta['state'][str(pid)] = {}
        for name, value in st.items():
            if isinstance(value, Tensor):
                tensors[f'{pid}.{name}'] = value.detach().cpu().contiguous().clone()
            else:
                meta['state'][str(pid)][name] = value
    return tensors, meta


def _rng_state() -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f'cuda.{i}'] = s
    np_state: Any = np.random.get_state()
    py_state = random.getstate()
    meta = {
        'numpy': [np_state[0], np_state[1].tolist(), *(float(x) if isinstance(x, float)
                                                       else int(x) for x in np_state[2:])],
        'python': [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def save_checkpoint(
    path: str | Path,
    *,
    policy: nn.Module,
    ema: nn.Module | None,
    weighter: nn.Module | None,
    preprocessor: Preprocessor,
    robots: Mapping[str, RobotEntry],
    vocab: Mapping[str, Any],
    config: TrainConfig,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    extra_state: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (temp dir, then rename) and return its path.

    A failed write (a full disk, a read-only folder) removes the temp directory, leaves an
    existing checkpoint at ``path`` as it was and raises ``CheckpointError`` naming ``path``.
    """
    final = Path(path)
    tmp = final.parent / f'.tmp-{final.name}-{os.getpid()}'
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _drop_stale_temps(final.parent)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        (tmp / TEMP_MARKER).write_text(json.dumps({'pid': os.getpid(), 'writer': 'ptr'}))
        _write_contents(tmp, policy=policy, ema=ema, weighter=weighter,
                        preprocessor=preprocessor, robots=robots, vocab=vocab, config=config,
                        step=step)
        if optimizer is not None:
            _write_training_state(tmp / 'training_state', optimizer, step, extra_state or {})
        (tmp / TEMP_MARKER).unlink()
        _write_json(tmp / CHECKSUMS, _checksums(tmp))
        _apply_umask(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        msg = f'{final}: cannot write the checkpoint: {" ".join(reason.split())}'
        raise CheckpointError(msg) from err
    return final


def _write_contents(
    tmp: Path,
    *,
    policy: nn.Module,
    ema: nn.Module | None,
    weighter: nn.Module | None,
    preprocessor: Preprocessor,
    robots: Mapping[str, RobotEntry],
    vocab: Mapping[str, Any],
    config: TrainConfig,
    step: int,
) -> None:
    """Metadata and weights of a checkpoint, into its temp directory."""
    weighter_cfg = config.weighter
    _write_json(tmp / 'config.json', {
        'format': FORMAT,
        'schema_version': SCHEMA_VERSION,
        'git_revision': _git_revision(),
        'checksums': CHECKSUMS,  # written with one: its absence later is not "an old checkpoint"
        'step': step,
        'head': config.policy.head,
        'weighter': {'name': weighter_cfg.name, 'options': weighter_cfg.options},
        'train_config': to_dict(config),
    })
    _write_json(tmp / 'preprocess.json', preprocessor.to_json())
    _write_json(tmp / 'robots.json', {name: robot_record(e) for name, e in robots.items()})
    _write_json(tmp / 'vocab.json', dict(vocab))
    save_file(_tensors(policy.state_dict()), str(tmp / 'model.safetensors'))
    if ema is not None:
        save_file(_tensors(ema.state_dict()), str(tmp / 'ema.safetensors'))
    if weighter is not None:
        save_file(_tensors(weighter.state_dict()), str(tmp / 'weighter.safetensors'))


def _write_training_state(
    state_dir: Path, optimizer: torch.optim.Optimizer, step: int, extra: Mapping[str, Any]
) -> None:
    """Optimizer, RNGs, step and ``extra`` (the data position) for an exact resume."""
    state_dir.mkdir()
    tensors, meta = _optimizer_files(optimizer)
    save_file(tensors, str(state_dir / 'optimizer.safetensors'))
    _write_json(state_dir / 'optimizer.json', meta)
    rng_tensors, rng_meta = _rng_state()
    save_file(rng_tensors, str(state_dir / 'rng.safetensors'))
    _write_json(state_dir / 'state.json', {'step': step, 'rng': rng_meta, **extra})


def _checksums(root: Path) -> dict[str, str]:
    return {str(f.relative_to(root)): file_sha256(f) for f in sorted(root.rglob('*'))
            if f.is_file() and f.name != CHECKSUMS}


def file_sha256(file: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with file.open('rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    try:  # Linux: read it without the race of setting it
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('Umask:'):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _apply_umask(root: Path) -> None:
    """safetensors writes 0600; give every file and folder the umask's permissions."""
    mask = _umask()
    root.chmod(0o777 & ~mask)
    for p in root.rglob('*'):
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def _drop_stale_temps(folder: Path) -> None:
    """Remove temp directories a save killed half-way left in ``folder`` (ours: marked, and
    their writer is dead); anything else is left alone."""
    for tmp in folder.glob('.tmp-*'):
        try:
            marker = json.loads((tmp / TEMP_MARKER).read_text())
        except (OSError, ValueError):
            continue
        pid = marker.get('pid') if isinstance(marker, dict) else None
        if (isinstance(marker, dict) and marker.get('writer') == 'ptr' and isinstance(pid, int)
                and not pid_alive(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def verify_checksums(root: Path) -> None:
    """Refuse a checkpoint whose files differ from ``checksums.json`` (one line, the file).

    Checkpoints written before checksums existed have none: loaded with a warning. One whose
    ``config.json`` says it was written with them is refused without them (deleted, or an
    incomplete copy): verification is never turned off without a word.
    """
    file = root / CHECKSUMS
    if not (root / 'config.json').is_file():
        return  # not a checkpoint at all: load_checkpoint says so
    if not file.is_file():
        meta = read_json_file(root / 'config.json')
        if isinstance(meta, dict) and meta.get('checksums'):
            msg = (f'{file}: missing, though this checkpoint was written with it (deleted, or an '
                   f'incomplete copy); refusing to load unverified weights')
            raise CheckpointError(msg)
        log.warning('%s: no %s (a checkpoint older than checksums): its files are not '
                    'verified', root, CHECKSUMS)
        return
    recorded = read_json_file(file)
    if not isinstance(recorded, dict):
        msg = f'{file}: expected a mapping of file -> sha256'
        raise CheckpointError(msg)
    for name, digest in recorded.items():
        target = root / name
        if '..' in Path(name).parts or Path(name).is_absolute():
            msg = f'{file}: entry {name!r} points outside the checkpoint'
            raise CheckpointError(msg)
        if not target.is_file():
            msg = f'{target}: missing (listed in {CHECKSUMS}); the checkpoint is incomplete'
            raise CheckpointError(msg)
        if file_sha256(target) != digest:
            msg = (f'{target}: checksum mismatch (sha256 differs from {CHECKSUMS}): the file is '
                   f'corrupt or was changed; refusing to load it')
            raise CheckpointError(msg)


# -- loading --------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """A loaded checkpoint (weights as tensors, metadata as objects)."""

    path: Path
    config: TrainConfig
    meta: dict[str, Any]
    preprocessor: Preprocessor
    robots: dict[str, RobotEntry]
    vocab: dict[str, Any]
    model: dict[str, Tensor]
    ema: dict[str, Tensor] | None
    weighter: dict[str, Tensor] | None

    @property
    def step(self) -> int:
        return int(self.meta.get('step', 0))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint directory; refuses pickles and anything that is not ptr's format."""
    root = Path(path)
    if not root.exists():
        msg = f'{root}: checkpoint not found'
        raise CheckpointError(msg)
    refuse_pickles(root)
    verify_checksums(root)
    meta = read_json_file(root / 'config.json')
    if meta.get('format') != FORMAT:
        msg = f'{root / "config.json"}: not a ptr checkpoint (format {meta.get("format")!r})'
        raise CheckpointError(msg)
    if meta.get('schema_version') != SCHEMA_VERSION:
        msg = (f'{root}: checkpoint schema_version {meta.get("schema_version")!r}, this ptr '
               f'reads {SCHEMA_VERSION}')
        raise CheckpointError(msg)
    try:
        config = from_dict(TrainConfig, meta['train_config'])
    except ConfigError as err:
        msg = f'{root / "config.json"}: invalid train_config: {err}'
        raise CheckpointError(msg) from err
    try:
        pre = Preprocessor.from_json(read_json_file(root / 'preprocess.json'))
    except (KeyError, TypeError, ValueError) as err:
        msg = f'{root / "preprocess.json"}: invalid: {err!r}'
        raise CheckpointError(msg) from err
    if not (root / 'model.safetensors').is_file():
        msg = f'{root}: not a ptr checkpoint (no model.safetensors)'
        raise CheckpointError(msg)
    opt = {n: root / f'{n}.safetensors' for n in ('ema', 'weighter')}
    robots = _read_robots(root / 'robots.json', pre.layout.image_size)
    return Checkpoint(
        path=root,
        config=config,
        meta=meta,
        preprocessor=pre,
        robots=robots,
        vocab=_check_vocab(root / 'vocab.json', read_json_file(root / 'vocab.json')),
        model=_load_tensors(root / 'model.safetensors'),
        ema=_load_tensors(opt['ema']) if opt['ema'].is_file() else None,
        weighter=_load_tensors(opt['weighter']) if opt['weighter'].is_file() else None,
    )


def _check_vocab(file: Path, vocab: Any) -> dict[str, Any]:
    """Refuse a ``vocab.json`` that is not ``{"tasks": [names], "sources": [names]}``."""
    if not isinstance(vocab, dict):
        msg = (f'{file}: expected a mapping {{"tasks": [...], "sources": [...]}}, got a '
               f'{type(vocab).__name__}')
        raise CheckpointError(msg)
    for key in ('tasks', 'sources'):
        names = vocab.get(key)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            msg = f'{file}: {key} must be a list of names, got {names!r}'
            raise CheckpointError(msg)
    return vocab


def read_robots(root: str | Path) -> dict[str, RobotEntry]:
    """The robots of checkpoint ``root`` (``robots.json``; the layout's image size from
    ``preprocess.json``), without loading its weights."""
    root = Path(root)
    try:
        h, w = read_json_file(root / 'preprocess.json')['layout']['image_size']
    except (KeyError, TypeError, ValueError) as err:
        msg = f'{root / "preprocess.json"}: no layout.image_size: {err!r}'
        raise CheckpointError(msg) from err
    return _read_robots(root / 'robots.json', (int(h), int(w)))


def _read_robots(file: Path, image_size: tuple[int, int]) -> dict[str, RobotEntry]:
    """Each robot of ``robots.json`` from its record (the profile; ``bag_tools.robots``), the
    robots with cameras at the layout's ``image_size``. A checkpoint written before the record
    was stored whole left the layout's size out of each profile: it is read from the layout."""
    records = read_json_file(file)
    if not isinstance(records, dict):
        msg = f'{file}: expected a mapping of robot -> {{"profile": ...}}'
        raise CheckpointError(msg)
    robots: dict[str, RobotEntry] = {}
    try:
        for name, record in records.items():
            profile = record.get('profile') if isinstance(record, dict) else None
            if isinstance(profile, dict) and profile.get('cameras') and (
                    profile.get('image_size') is None):
                record = {'profile': {**profile, 'image_size': list(image_size)}}
            robots[name] = read_robot(record, where=f'{file}: robot {name!r}')
        size = shared_image_size(robots, where=str(file))
    except DatasetError as err:
        msg = f'{err}'
        raise CheckpointError(msg) from err
    if any(e['camera_roles'] for e in robots.values()) and size != tuple(image_size):
        msg = (f'{file}: robots at image size {list(size)}, the layout at {list(image_size)} '
               '(preprocess.json layout.image_size): not one checkpoint')
        raise CheckpointError(msg)
    return robots


def load_training_state(path: str | Path, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore the optimizer and the global RNGs; return ``state.json`` (step, data position)."""
    state_dir = Path(path) / 'training_state'
    if not state_dir.is_dir():
        msg = f'{path}: no training_state/ to resume from'
        raise CheckpointError(msg)
    tensors = _load_tensors(state_dir / 'optimizer.safetensors')
    meta = read_json_file(state_dir / 'optimizer.json')
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in meta['state'].items()}
    for key, value in tensors.items():
        pid, name = key.split('.', 1)
        state.setdefault(int(pid), {})[name] = value
    try:
        optimizer.load_state_dict({'state': state, 'param_groups': meta['param_groups']})
    except (ValueError, KeyError) as err:
        msg = f'{state_dir}: optimizer state does not fit this model: {err}'
        raise CheckpointError(msg) from err
    info: dict[str, Any] = read_json_file(state_dir / 'state.json')
    rng = _load_tensors(state_dir / 'rng.safetensors')
    torch.set_rng_state(rng['torch'])
    if torch.cuda.is_available():
        cuda = [rng[f'cuda.{i}'] for i in range(torch.cuda.device_count()) if f'cuda.{i}' in rng]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    np_state = info['rng']['numpy']
    np.random.set_state((np_state[0], np.asarray(np_state[1], np.uint32), *np_state[2:]))
    py_state = info['rng']['python']
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))
    return info


def load_matching(
    module: nn.Module, state: Mapping[str, Tensor], *, reinit_mismatched: bool, source: str
) -> list[str]:
    """Load ``state`` into ``module``; shape/name mismatches are an error naming the tensors,
    or (``reinit_mismatched``) are skipped so those tensors keep their fresh initialization.
    Returns the names that were re-initialized."""
    own = module.state_dict()
    mismatched = [k for k in own if k in state and state[k].shape != own[k].shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = mismatched + missing
    if (bad or unexpected) and not reinit_mismatched:
        detail = '; '.join(
            [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}'
             for k in mismatched[:3]]
            + [f'{k}: missing in checkpoint' for k in missing[:3]]
            + [f'{k}: not in model' for k in unexpected[:3]]
        )
        msg = (f'{source}: {len(bad) + len(unexpected)} tensor(s) do not fit this model ({detail}'
               f'); pass --set reinit_mismatched=true to re-initialize only those')
        raise CheckpointError(msg)
    keep = {k: v for k, v in state.items() if k in own and k not in mismatched}
    module.load_state_dict(keep, strict=False)
    if bad:
        log.warning('%s: re-initialized %d mismatching tensor(s): %s', source, len(bad),
                    ', '.join(bad[:8]))
    return bad
