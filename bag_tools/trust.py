"""The trust file: how much each recorded episode (and each of its frames) should be learned from.

``ptr score DATASET... --init BASE --out TRUST`` writes it; ``ptr train --trust TRUST`` and the
dataset tools read it. It lives *beside* a dataset, conventionally ``<dataset>.trust.json``
(``default_trust_path``), never inside it, and is bound to the dataset's content by
``dataset_content_hash``: a dataset that gained, lost or changed an episode no longer matches, and
``TrustFile.for_dataset`` refuses it instead of silently applying stale trust.

Schema ``ptr.trust/1`` (JSON, written atomically: temp file + ``os.replace``; ``read_trust``
checks every field's type and range and names the wrong one, ``FILE: malformed trust file:
episodes[3].trust: true (bool), expected a number in [0, 1]``; a bool is not a number)::

    {"schema": "ptr.trust/1",
     "created": "2026-12-01T21:50:00+00:00",          # ISO-8601
     "scorer": {...},                                  # every resolved scorer option, the base
                                                       # checkpoint path and its hash, w_min
     "datasets": [{"path": str, "content_hash": str, "episodes": int}],
     "episodes": [{"dataset_hash": str, "episode_id": str,
                   "trust": float,                     # in [w_min, 1]
                   "score": float,                     # raw out-of-fold score
                   "fold": int,                        # the fold whose scorer never saw it
                   "signals": {name: float},           # every per-episode signal computed
                   "frame_trust": [float, ...]}]}      # one per frame, in [0, 1]

Writers (``write_trust``, ``write_score_report``) replace only a previous file of their own
schema (recognised by its first bytes); a symlink, a folder, any other file, a read-only file or a
path inside a dataset folder is refused in one line naming it (``check_destination``; ``ptr
score`` runs it, with a write probe of the folder, before its pass). A failed write (disk full,
read-only) is one ``TrustError`` naming the file, and leaves no temp file.

Depends on numpy and json only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import MANIFEST, Dataset
from bag_tools.errors import BagToolsError
from bag_tools.fileio import read_head, read_json, write_atomic

__all__ = [
    'DROP_TRUST',
    'DROP_WARN_SHARE',
    'REPORT_SCHEMA',
    'SCHEMA',
    'EpisodeTrust',
    'TrustDataset',
    'TrustError',
    'TrustFile',
    'check_destination',
    'dataset_content_hash',
    'default_trust_path',
    'drop_warning',
    'make_trust_file',
    'read_trust',
    'write_score_report',
    'write_trust',
]

SCHEMA = 'ptr.trust/1'
REPORT_SCHEMA = 'ptr.score-report/1'
SUFFIX = '.trust.json'
# ``ptr score`` and ``ptr train --trust`` warn (``drop_warning``) when more than this share of
# the episodes fall below trust ``DROP_TRUST`` (the calibration calls them more likely bad than
# good). The calibration takes the upper group as the reference of good demonstrations; when
# that group is the minority, the data are mostly bad or the scorer failed, and training would
# learn from a few episodes: the user has to look. (The benchmark's mixed sets are half bad:
# they keep half and stay under the line.)
DROP_TRUST = 0.5
DROP_WARN_SHARE = 0.5


class TrustError(BagToolsError):
    """A trust file is unreadable, of another schema, or does not match the dataset given."""


def dataset_content_hash(dataset: Dataset) -> str:
    """sha256 hex over the sorted (episode id, episode content hash, length) of the manifest."""
    episodes = dataset.manifest['episodes']
    rows = sorted((e['id'], e.get('content_hash', ''), int(e['length'])) for e in episodes)
    digest = hashlib.sha256()
    for episode_id, content_hash, length in rows:
        digest.update(f'{episode_id}\x1f{content_hash}\x1f{length}\x1e'.encode())
    return digest.hexdigest()


def default_trust_path(dataset_root: str | Path) -> Path:
    """``<dataset>.trust.json`` beside the dataset folder (not inside it)."""
    root = Path(dataset_root).resolve()
    return root.with_name(root.name + SUFFIX)


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        msg = f'{what} is {value!r}; must be finite'
        raise TrustError(msg)
    return value


@dataclass(frozen=True)
class EpisodeTrust:
    """The trust of one episode of one dataset (``frame_trust``: one value per frame)."""

    dataset_hash: str
    episode_id: str
    trust: float
    score: float
    fold: int
    frame_trust: npt.NDArray[np.float64]
    signals: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f'episode {self.episode_id!r}'
        if not self.episode_id:
            msg = 'episode_id is empty'
            raise TrustError(msg)
        trust = _finite(self.trust, f'{where}: trust')
        if not 0.0 <= trust <= 1.0:
            msg = f'{where}: trust {trust!r} is outside [0, 1]'
            raise TrustError(msg)
        frames = np.asarray(self.frame_trust, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(frames)) or np.any((frames < 0.0) | (frames > 1.0)):
            msg = f'{where}: frame_trust has values outside [0, 1] or not finite'
            raise TrustError(msg)
        frames.setflags(write=False)
        object.__setattr__(self, 'trust', trust)
        object.__setattr__(self, 'score', float(self.score))
        object.__setattr__(self, 'fold', int(self.fold))
        object.__setattr__(self, 'frame_trust', frames)
        object.__setattr__(
            self, 'signals',
            {str(k): _finite(v, f'{where}: signal {k!r}') for k, v in self.signals.items()},
        )

    def to_json(self) -> dict[str, Any]:
        return {
            'dataset_hash': self.dataset_hash,
            'episode_id': self.episode_id,
            'trust': self.trust,
            'score': self.score if math.isfinite(self.score) else None,
            'fold': self.fold,
            'signals': dict(self.signals),
            'frame_trust': [round(float(x), 6) for x in self.frame_trust],
        }

    @classmethod
    def from_json(cls, obj: Any, *, where: str = 'episode') -> EpisodeTrust:
        """One ``episodes[i]`` entry, every field checked for its type and range first
        (``where`` names it in messages: ``episodes[3]``)."""
        obj = _field(obj, dict, where, 'an object')
        episode_id = _field(obj.get('episode_id'), str, f'{where}.episode_id', 'a string')
        frames = _unit_list(obj.get('frame_trust'), f'{where}.frame_trust')
        signals = _field(obj.get('signals', {}), dict, f'{where}.signals', 'an object')
        score = obj.get('score')
        return cls(
            dataset_hash=_field(obj.get('dataset_hash'), str, f'{where}.dataset_hash',
                                'a string'),
            episode_id=episode_id,
            trust=_number(obj.get('trust'), f'{where}.trust', 0.0, 1.0),
            score=float('nan') if score is None else _number(score, f'{where}.score'),
            fold=_integer(obj.get('fold'), f'{where}.fold', -1),
            frame_trust=frames,
            signals={str(k): _number(v, f'{where}.signals.{k}') for k, v in signals.items()},
        )


@dataclass(frozen=True)
class TrustDataset:
    """One dataset a trust file was computed on."""

    path: str
    content_hash: str
    episodes: int

    def to_json(self) -> dict[str, Any]:
        return {'path': self.path, 'content_hash': self.content_hash, 'episodes': self.episodes}


@dataclass(frozen=True)
class TrustFile:
    """A trust file in memory. ``source`` is where it was read from (for messages only)."""

    scorer: Mapping[str, Any]
    datasets: tuple[TrustDataset, ...]
    episodes: tuple[EpisodeTrust, ...]
    created: str = ''
    source: str = ''

    def __post_init__(self) -> None:
        where = self.source or 'trust file'
        w_min = float(self.scorer.get('w_min', 0.0))
        if not 0.0 <= w_min <= 1.0:
            msg = f'{where}: scorer.w_min {w_min!r} is outside [0, 1]'
            raise TrustError(msg)
        hashes = {d.content_hash for d in self.datasets}
        seen: set[tuple[str, str]] = set()
        for ep in self.episodes:
            if ep.dataset_hash not in hashes:
                msg = (
                    f'{where}: episode {ep.episode_id!r} names dataset hash '
                    f'{ep.dataset_hash[:12]}, which is not among its datasets'
                )
                raise TrustError(msg)
            if ep.trust < w_min - 1e-9:
                msg = f'{where}: episode {ep.episode_id!r} trust {ep.trust} < w_min {w_min}'
                raise TrustError(msg)
            key = (ep.dataset_hash, ep.episode_id)
            if key in seen:
                msg = f'{where}: episode {ep.episode_id!r} appears twice for one dataset'
                raise TrustError(msg)
            seen.add(key)
        if not self.created:
            now = datetime.now(timezone.utc).isoformat(timespec='seconds')
            object.__setattr__(self, 'created', now)

    def for_dataset(self, dataset: Dataset) -> dict[str, tuple[float, npt.NDArray[np.float64]]]:
        """``{episode_id: (trust, frame_trust [T])}`` for every episode of ``dataset``.

        Raises ``TrustError`` (a ``BagToolsError``) naming this file when the dataset's content
        hash is not in it (the dataset changed since scoring: run ``ptr score`` again), when an
        episode of the dataset is missing, or when a frame_trust length differs from the episode.
        """
        where = self.source or 'trust file'
        digest = dataset_content_hash(dataset)
        if digest not in {d.content_hash for d in self.datasets}:
            scored = ', '.join(d.path for d in self.datasets) or 'no dataset'
            msg = (
                f'{where}: was scored on {scored}, not on the current content of {dataset.root} '
                f'(hash {digest[:12]}); the trust is stale, run `ptr score` again'
            )
            raise TrustError(msg)
        mine = {ep.episode_id: ep for ep in self.episodes if ep.dataset_hash == digest}
        out: dict[str, tuple[float, npt.NDArray[np.float64]]] = {}
        for entry in dataset.manifest['episodes']:
            ep = mine.get(entry['id'])
            if ep is None:
                msg = f'{where}: has no trust for episode {entry["id"]!r} of {dataset.root}'
                raise TrustError(msg)
            if len(ep.frame_trust) != int(entry['length']):
                msg = (
                    f'{where}: episode {entry["id"]!r} has {len(ep.frame_trust)} frame_trust '
                    f'values, the episode has {entry["length"]} frames'
                )
                raise TrustError(msg)
            out[entry['id']] = (ep.trust, ep.frame_trust)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            'schema': SCHEMA,
            'created': self.created,
            'scorer': dict(self.scorer),
            'datasets': [d.to_json() for d in self.datasets],
            'episodes': [ep.to_json() for ep in self.episodes],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, source: str = '') -> TrustFile:
        """A trust file from its JSON object; every field is checked for its type and range,
        and the one that is wrong is named (``FILE: episodes[3].trust: ...``)."""
        where = source or 'trust file'
        schema = obj.get('schema')
        if schema != SCHEMA:
            msg = f'{where}: schema {schema!r}, this ptr reads {SCHEMA!r}'
            raise TrustError(msg)
        try:
            scorer = _field(obj.get('scorer'), dict, 'scorer', 'an object')
            if 'w_min' in scorer:
                _number(scorer['w_min'], 'scorer.w_min', 0.0, 1.0)
            datasets = tuple(
                TrustDataset(
                    _field(d.get('path'), str, f'datasets[{i}].path', 'a string'),
                    _field(d.get('content_hash'), str, f'datasets[{i}].content_hash',
                           'a string'),
                    _integer(d.get('episodes'), f'datasets[{i}].episodes', 0))
                for i, d in enumerate(_records(obj.get('datasets'), 'datasets')))
            episodes = tuple(EpisodeTrust.from_json(e, where=f'episodes[{i}]')
                             for i, e in enumerate(_field(obj.get('episodes'), list,
                                                          'episodes', 'a list')))
            created = _field(obj.get('created'), str, 'created', 'a string')
        except TrustError as err:
            msg = f'{where}: malformed trust file: {err}'
            raise TrustError(msg) from err
        return cls(scorer=scorer, datasets=datasets, episodes=episodes, created=created,
                   source=source)


def _field(value: Any, kind: type, where: str, want: str) -> Any:
    """``value`` when it is a ``kind``, else one ``TrustError`` naming the field."""
    if not isinstance(value, kind):
        msg = f'{where}: {_got(value)}, expected {want}'
        raise TrustError(msg)
    return value


def _records(value: Any, where: str) -> list[dict[str, Any]]:
    """A list of objects (``datasets``)."""
    items: list[dict[str, Any]] = _field(value, list, where, 'a list of objects')
    for i, item in enumerate(items):
        _field(item, dict, f'{where}[{i}]', 'an object')
    return items


def _number(value: Any, where: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite JSON number (not a bool, not a string) in ``[lo, hi]``."""
    want = 'a finite number' if math.isinf(lo) else f'a number in [{lo:g}, {hi:g}]'
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not lo <= value <= hi:
        msg = f'{where}: {_got(value)}, expected {want}'
        raise TrustError(msg)
    return float(value)


def _unit_list(value: Any, where: str) -> npt.NDArray[np.float64]:
    """A list of numbers in [0, 1] (``frame_trust``), checked in one pass."""
    items = _field(value, list, where, 'a list of numbers in [0, 1]')
    if all(type(x) is float or type(x) is int for x in items):
        arr = np.asarray(items, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(arr) | (arr < 0.0) | (arr > 1.0))
        if not len(bad):
            return arr
        first = int(bad[0])
    else:
        first = next(i for i, x in enumerate(items) if type(x) not in (float, int))
    _number(items[first], f'{where}[{first}]', 0.0, 1.0)
    raise AssertionError(first)  # _number raised for it


def _integer(value: Any, where: str, lo: int) -> int:
    """A JSON integer (not a bool, not a float) >= ``lo``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        msg = f'{where}: {_got(value)}, expected an integer >= {lo}'
        raise TrustError(msg)
    return int(value)


def _got(value: Any) -> str:
    """What a wrong field holds, short: ``true (bool)``, ``"0.5" (str)``, ``missing``."""
    if value is None:
        return 'missing or null'
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else repr(value)
    text = text if len(text) <= 40 else text[:37] + '...'
    return f'{text} ({type(value).__name__})'


def drop_warning(trust: Sequence[float], frames: Sequence[int], *, where: str) -> str | None:
    """One line when more than ``DROP_WARN_SHARE`` of the episodes (``trust`` and ``frames``
    per episode) are below trust ``DROP_TRUST``, else None."""
    low = sum(t < DROP_TRUST for t in trust)
    if not trust or low <= DROP_WARN_SHARE * len(trust):
        return None
    total = sum(frames)
    kept = sum(t * n for t, n in zip(trust, frames)) / max(total, 1)
    return (f'{where}: trust drops {low} of {len(trust)} episodes (below trust {DROP_TRUST:g}; '
            f'warned above {DROP_WARN_SHARE:.0%}) and keeps {kept:.0%} of their {total} steps: '
            'training would learn from few episodes; check the scores and the data')


def make_trust_file(
    scorer: Mapping[str, Any],
    datasets: Sequence[tuple[Dataset, Sequence[EpisodeTrust]]],
) -> TrustFile:
    """A ``TrustFile`` for ``datasets`` whose episodes already carry the datasets' hashes."""
    entries = tuple(
        TrustDataset(str(Path(ds.root).resolve()), dataset_content_hash(ds), len(ds))
        for ds, _ in datasets
    )
    episodes = tuple(ep for _, eps in datasets for ep in eps)
    return TrustFile(scorer=scorer, datasets=entries, episodes=episodes)


def write_trust(path: str | Path, trust: TrustFile) -> Path:
    """Write ``trust`` to ``path`` atomically (temp file in the same folder + ``os.replace``).

    Replaces only a previous trust file (``check_destination``); a failed write (disk full,
    read-only) is one ``TrustError`` naming ``path``, with the temp file removed."""
    path = Path(path)
    check_destination(path, schema=SCHEMA)
    try:
        text = json.dumps(trust.to_json(), indent=1, allow_nan=False)
    except ValueError as err:
        msg = f'{path}: cannot write the trust file: {err}'
        raise TrustError(msg) from err
    return _write_atomic(path, text, 'the trust file')


def write_score_report(path: str | Path, report: Mapping[str, Any]) -> Path:
    """Write ``ptr score --report``'s JSON (schema ``ptr.score-report/1``) like a trust file:
    atomically, replacing only a previous report."""
    path = Path(path)
    check_destination(path, schema=REPORT_SCHEMA)
    text = json.dumps({'schema': REPORT_SCHEMA, **report}, indent=1)
    return _write_atomic(path, text, 'the score report')


def check_destination(path: str | Path, *, schema: str, datasets: Sequence[str | Path] = (),
                      probe: bool = False) -> Path:
    """Refuse, in one ``TrustError`` naming ``path``, a destination a ptr command may not
    write: a symlink, a directory, an existing file that is not a previous ptr file of
    ``schema`` (recognised by its first bytes), a read-only file, a path inside a dataset
    folder (one of ``datasets``, or a folder holding a dataset manifest). ``probe``: also
    create and remove a file in the folder that would hold it (or the nearest existing one
    above it), so a read-only or missing folder is found before a long pass, not after."""
    path = Path(path)
    _check_not_in_dataset(path, datasets)
    if path.is_symlink():
        msg = (f'{path}: is a symbolic link (to {os.readlink(path)}); ptr writes files, not '
               'through links: name the file itself')
        raise TrustError(msg)
    if path.is_dir():
        msg = f'{path}: is a folder; give a file name for the {_KINDS[schema]}'
        raise TrustError(msg)
    if path.exists():
        if not _written_by_ptr(path, schema):
            msg = (f'{path}: exists and is not a {_KINDS[schema]} ptr wrote (no {schema!r}); '
                   'ptr replaces only its own files: remove it or choose another path')
            raise TrustError(msg)
        if not path.stat().st_mode & 0o222:
            msg = f'{path}: is read-only; make it writable or choose another path'
            raise TrustError(msg)
    if probe:
        _probe_folder(path)
    return path


_KINDS = {SCHEMA: 'trust file', REPORT_SCHEMA: 'score report'}
# ``{"schema": "ptr.trust/1"`` at the start of a file ptr wrote (``indent=1``: any whitespace);
# a score report written before reports had a schema starts with ``{"trust_file":``.
_HEAD = re.compile(rb'\A\s*\{\s*"(?:schema"\s*:\s*"(?P<schema>[^"]{1,64})"|trust_file"\s*:)')


def _written_by_ptr(path: Path, schema: str) -> bool:
    """Whether ``path`` is a regular file that begins like a ptr file of ``schema``."""
    head = read_head(path)
    match = None if head is None else _HEAD.match(head)
    if match is None:
        return False
    found = match.group('schema')
    return found.decode() == schema if found is not None else schema == REPORT_SCHEMA


def _check_not_in_dataset(path: Path, datasets: Sequence[str | Path]) -> None:
    """Refuse a path inside one of ``datasets`` or in a folder that holds a dataset manifest."""
    target = path.parent.resolve() / path.name
    for root in [Path(d).resolve() for d in datasets] + [target.parent]:
        if target.is_relative_to(root) and (root / MANIFEST).is_file():
            msg = (f'{path}: is inside the dataset folder {root}; a trust file or report lives '
                   'beside the dataset (default: <dataset>.trust.json), never in it')
            raise TrustError(msg)


def _probe_folder(path: Path) -> None:
    """Create and remove a file where ``path`` would be written (its nearest existing folder)."""
    folder = path.parent.resolve()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        msg = f'{path}: cannot be written: {folder} is a file, not a folder'
        raise TrustError(msg)
    probe = folder / f'.{path.name}.{os.getpid()}.probe'
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        msg = f'{path}: cannot be written ({folder}: {err.strerror or err})'
        raise TrustError(msg) from err


def _write_atomic(path: Path, text: str, what: str) -> Path:
    """``text`` into ``path`` whole or not at all (``bag_tools.fileio.write_atomic``; the
    folders made for it are removed on failure)."""
    return write_atomic(path, text, what=what, error=TrustError, make_folders=True)


def read_trust(path: str | Path) -> TrustFile:
    """Read and validate a trust file; every error names ``path``."""
    path = Path(path)
    obj = read_json(path, 'trust file', error=TrustError,
                    missing=f'{path}: no such trust file (write one with `ptr score`)')
    return TrustFile.from_json(obj, source=str(path))
