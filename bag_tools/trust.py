"""The trust file: how much each recorded episode (and each of its frames) should be learned from.

``ptr score DATASET... --init BASE --out TRUST`` writes it; ``ptr train --trust TRUST`` and the
dataset tools read it. It lives *beside* a dataset, conventionally ``<dataset>.trust.json``
(``default_trust_path``), never inside it, and is bound to the dataset's content by
``dataset_content_hash``: a dataset that gained, lost or changed an episode no longer matches, and
``TrustFile.for_dataset`` refuses it instead of silently applying stale trust.

Schema ``ptr.trust/1`` (JSON, written atomically: temp file + ``os.replace``)::

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

Depends on numpy and json only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import Dataset
from bag_tools.errors import BagToolsError

__all__ = [
    'SCHEMA',
    'EpisodeTrust',
    'TrustDataset',
    'TrustError',
    'TrustFile',
    'dataset_content_hash',
    'default_trust_path',
    'make_trust_file',
    'read_trust',
    'write_trust',
]

SCHEMA = 'ptr.trust/1'
SUFFIX = '.trust.json'


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
    def from_json(cls, obj: Mapping[str, Any]) -> EpisodeTrust:
        score = obj.get('score')
        return cls(
            dataset_hash=str(obj['dataset_hash']),
            episode_id=str(obj['episode_id']),
            trust=float(obj['trust']),
            score=float('nan') if score is None else float(score),
            fold=int(obj['fold']),
            frame_trust=np.asarray(obj['frame_trust'], dtype=np.float64),
            signals={str(k): float(v) for k, v in obj.get('signals', {}).items()},
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
        where = source or 'trust file'
        schema = obj.get('schema')
        if schema != SCHEMA:
            msg = f'{where}: schema {schema!r}, this ptr reads {SCHEMA!r}'
            raise TrustError(msg)
        try:
            datasets = tuple(
                TrustDataset(str(d['path']), str(d['content_hash']), int(d['episodes']))
                for d in obj['datasets']
            )
            episodes = tuple(EpisodeTrust.from_json(e) for e in obj['episodes'])
            scorer = dict(obj['scorer'])
            created = str(obj['created'])
        except (KeyError, TypeError, ValueError) as err:
            msg = f'{where}: malformed trust file ({type(err).__name__}: {err})'
            raise TrustError(msg) from err
        except TrustError as err:
            msg = f'{where}: {err}'
            raise TrustError(msg) from err
        return cls(scorer=scorer, datasets=datasets, episodes=episodes, created=created,
                   source=source)


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
    """Write ``trust`` to ``path`` atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        tmp.write_text(json.dumps(trust.to_json(), indent=1, allow_nan=False))
        os.replace(tmp, path)
    except (OSError, ValueError) as err:
        tmp.unlink(missing_ok=True)
        msg = f'{path}: cannot write the trust file: {err}'
        raise TrustError(msg) from err
    return path


def read_trust(path: str | Path) -> TrustFile:
    """Read and validate a trust file; every error names ``path``."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError as err:
        msg = f'{path}: no such trust file (write one with `ptr score`)'
        raise TrustError(msg) from err
    except (OSError, ValueError) as err:
        msg = f'{path}: not a readable JSON trust file: {err}'
        raise TrustError(msg) from err
    if not isinstance(obj, dict):
        msg = f'{path}: not a trust file (top level is not an object)'
        raise TrustError(msg)
    return TrustFile.from_json(obj, source=str(path))
