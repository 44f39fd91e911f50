"""The dataset on disk: ``manifest.json`` plus one directory of ``.npy`` arrays per episode.

Layout (schema version 1)::

    DATASET/
      manifest.json                  # Manifest (TypedDict below)
      episodes/<episode_id>/
        meta.json                    # EpisodeMeta: robot, task, source bag, hash, tags, sync
        timestamp.npy                # int64   [T]          grid times, ns
        state.npy                    # float32 [T, Ds]      robot's own state width
        action.npy                   # float32 [T, Da]
        state_valid.npy              # bool    [T]
        action_valid.npy             # bool    [T]
        images/<role>.npy            # uint8   [T, H, W, C] (depth: uint16 [T, H, W, 1])
        images/<role>_valid.npy      # bool    [T]

Every array is a plain ``.npy`` so readers memory-map it (``np.load(mmap_mode='r')``). An episode
is written into ``episodes/.tmp-<id>-<pid>`` and renamed into place, so a crash never leaves a
half episode; the manifest is written through ``.tmp-manifest-<pid>/`` and renamed into place
after each batch of episodes.

One writer per dataset: a writer holds ``dataset_lock(root, what)`` (``bag_tools.lock``: a
``flock`` the kernel drops when the holder dies) and only then calls ``create_or_open``, which
adopts complete episode directories a killed writer left out of the manifest and removes its
temps. Readers (``Dataset.open``) never write: they take no lock, adopt nothing and remove
nothing; an unindexed episode folder is named in one warning and ignored. A write that fails
(disk full, read-only) raises ``DatasetWriteError`` naming the dataset, its temp removed.

A dataset only ever touches what it made: every temp directory holds a marker file
(``.ptr-temp``, naming the writer's pid) and only marked temps of dead writers are removed;
a directory that is neither empty nor a dataset is refused before anything is written or
removed; episode ids are plain names (``check_episode_id``), checked on write and on read, so
a crafted manifest cannot point outside ``episodes/``.

Several robots share one dataset (or several datasets are read together): each robot keeps its
own state/action width on disk; ``ptr_core.layout.unified_layout`` pads them to a common width
for training.

A robot's record is its resolved profile: ``manifest.json`` stores ``robots.<name>.profile``
and nothing derived from it; reading derives the rest of each ``RobotEntry`` (names, limits,
camera roles, image size, ...) from the profile (``bag_tools.robots``). A manifest written
before, which also holds the derived copies, reads the same (the copies are not read).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt

from bag_tools.errors import DatasetError
from bag_tools.fileio import read_json
from bag_tools.lifetime import pid_alive
from bag_tools.lock import LOCK_NAME, refuse_if_busy, writer_lock
from bag_tools.robots import RobotEntry, read_robot, robot_record

__all__ = [
    'MANIFEST',
    'SCHEMA_VERSION',
    'STAT_FEATURES',
    'Dataset',
    'DatasetWriteError',
    'Episode',
    'EpisodeData',
    'EpisodeEntry',
    'FeatureStats',
    'Manifest',
    'RobotEntry',
    'check_episode_id',
    'check_target',
    'compute_stats',
    'dataset_lock',
    'dead_temp',
    'make_temp',
    'scratch_dir',
    'temp_owner',
    'write_episode',
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = 'manifest.json'
EPISODES = 'episodes'
STAT_FEATURES = ('state', 'action')
#: The file inside every temp directory this module creates; cleanup removes nothing without it.
TEMP_MARKER = '.ptr-temp'
_TEMP_PREFIX = '.tmp-'
_MANIFEST_TEMP = '.tmp-manifest-'


#: (dataset, unindexed folders) already warned about in this process.
_WARNED: set[tuple[str, tuple[str, ...]]] = set()


class DatasetWriteError(DatasetError):
    """The dataset folder cannot be written (disk full, read-only, no permission): a run stops
    here, as every later write would fail the same way."""


def write_failure(path: Path, err: OSError) -> DatasetWriteError:
    """The one-line error for a failed write under ``path`` (the folder the user named)."""
    where = f' ({err.filename})' if err.filename and str(err.filename) != str(path) else ''
    reason = err.strerror or f'short write, {err}: is the disk full?'  # numpy's own OSError
    msg = f'{path}: cannot write{where}: {reason}'
    return DatasetWriteError(msg)


class FeatureStats(TypedDict):
    """Per-dimension statistics of one feature over every valid frame of one robot."""

    count: int
    min: list[float]
    max: list[float]
    mean: list[float]
    std: list[float]
    p01: list[float]
    p99: list[float]


class EpisodeEntry(TypedDict):
    """One row of the manifest's episode index."""

    id: str
    robot: str
    length: int
    task: str
    source: str
    content_hash: str
    tags: dict[str, Any]


class Manifest(TypedDict):
    schema_version: int
    rate_hz: float
    robots: dict[str, RobotEntry]
    episodes: list[EpisodeEntry]
    stats: dict[str, dict[str, FeatureStats]]  # robot -> feature -> stats
    tasks: list[str]


@dataclass
class EpisodeData:
    """An episode in memory, as ingestion produces it (T grid steps)."""

    id: str
    robot: str
    timestamp: npt.NDArray[np.int64]
    state: npt.NDArray[np.float32]
    action: npt.NDArray[np.float32]
    state_valid: npt.NDArray[np.bool_]
    action_valid: npt.NDArray[np.bool_]
    images: dict[str, npt.NDArray[Any]] = field(default_factory=dict)
    image_valid: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    task: str = ''
    source: str = ''
    content_hash: str = ''
    tags: dict[str, Any] = field(default_factory=dict)
    sync_report: dict[str, Any] = field(default_factory=dict)
    part: tuple[int, int] = (0, 1)  # (index, count) of this episode among its bag's episodes

    def __post_init__(self) -> None:
        n = len(self.timestamp)
        checks: list[tuple[str, Sequence[Any] | npt.NDArray[Any]]] = [
            ('state', self.state),
            ('action', self.action),
            ('state_valid', self.state_valid),
            ('action_valid', self.action_valid),
        ]
        checks += [(f'images/{r}', a) for r, a in self.images.items()]
        checks += [(f'images/{r}_valid', a) for r, a in self.image_valid.items()]
        for name, arr in checks:
            if len(arr) != n:
                msg = f'episode {self.id}: {name} has {len(arr)} steps, timestamp has {n}'
                raise DatasetError(msg)
        if set(self.images) != set(self.image_valid):
            msg = f'episode {self.id}: images and image_valid name different camera roles'
            raise DatasetError(msg)

    @property
    def length(self) -> int:
        return len(self.timestamp)


class Episode:
    """An episode on disk, its arrays memory-mapped (read-only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.meta: dict[str, Any] = read_json(path / 'meta.json', 'episode meta.json',
                                              error=DatasetError)
        if 'id' not in self.meta or 'robot' not in self.meta:
            msg = f'{path}: meta.json lacks id or robot'
            raise DatasetError(msg)
        self.id: str = check_episode_id(self.meta['id'], where=str(path / 'meta.json'))
        self.robot: str = self.meta['robot']
        self.task: str = self.meta.get('task', '')
        self.tags: dict[str, Any] = self.meta.get('tags', {})
        index, count = self.meta.get('part', [0, 1])
        self.part: tuple[int, int] = (int(index), int(count))
        self.timestamp = self._load('timestamp')
        self.state = self._load('state')
        self.action = self._load('action')
        self.state_valid = self._load('state_valid')
        self.action_valid = self._load('action_valid')
        self.images: dict[str, npt.NDArray[Any]] = {}
        self.image_valid: dict[str, npt.NDArray[Any]] = {}
        for role in self.meta.get('camera_roles', []):
            self.images[role] = self._load(f'images/{role}')
            self.image_valid[role] = self._load(f'images/{role}_valid')

    def _load(self, name: str) -> npt.NDArray[Any]:
        file = self.path / f'{name}.npy'
        try:
            arr: npt.NDArray[Any] = np.load(file, mmap_mode='r', allow_pickle=False)
        except (OSError, ValueError) as err:
            msg = f'{file}: cannot load array: {err}'
            raise DatasetError(msg) from err
        return arr

    @property
    def length(self) -> int:
        return len(self.timestamp)

    @property
    def sync_report(self) -> dict[str, Any]:
        report: dict[str, Any] = self.meta.get('sync_report', {})
        return report


def check_episode_id(episode_id: object, *, where: str) -> str:
    """``episode_id`` if it is a plain directory name, else a ``DatasetError`` naming ``where``.

    Refused: empty or non-string ids, path separators, ``..``, a leading dot (temps and hidden
    files), NUL and names over 255 bytes -- anything that could resolve outside ``episodes/``.
    """
    bad = ''
    if not isinstance(episode_id, str) or not episode_id:
        bad = 'not a non-empty string'
    elif '/' in episode_id or '\\' in episode_id or os.path.isabs(episode_id):
        bad = 'contains a path separator'
    elif '..' in episode_id:
        bad = "contains '..'"
    elif episode_id.startswith('.'):
        bad = 'starts with a dot'
    elif '\0' in episode_id or len(os.fsencode(episode_id)) > 255:
        bad = 'contains NUL or is longer than 255 bytes'
    if bad:
        msg = f'{where}: episode id {episode_id!r} {bad}; ids are plain directory names'
        raise DatasetError(msg)
    assert isinstance(episode_id, str)
    return episode_id


def _save(path: Path, arr: npt.NDArray[Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def make_temp(path: Path) -> Path:
    """Create the temp directory ``path`` with our marker inside (it must not exist)."""
    path.mkdir()
    try:
        (path / TEMP_MARKER).write_text(json.dumps({'pid': os.getpid(), 'writer': 'ptr'}))
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return path



def dead_temp(path: Path) -> bool:
    """Whether ``path`` is a temp directory we made (``make_temp``) whose writer is dead."""
    pid = temp_owner(path)
    return pid is not None and not pid_alive(pid)


def temp_owner(path: Path) -> int | None:
    """The pid in ``path``'s marker when ``path`` is a temp directory we made, else None."""
    if path.is_symlink() or not path.is_dir():
        return None
    try:
        text = (path / TEMP_MARKER).read_text()
    except OSError:
        return None
    try:
        marker = json.loads(text)
    except (ValueError, RecursionError):
        # our marker, cut short by a kill while it was being written (seen: an empty one): the
        # pid is the one the directory is named by (``.tmp-<id>-<pid>``, ``.tmp-manifest-<pid>``,
        # an export's ``.<out>.tmp-<pid>``)
        tail = path.name.rsplit('-', 1)[-1]
        named = path.name.startswith('.') and _TEMP_PREFIX in path.name and tail.isdigit()
        return int(tail) if named and int(tail) > 0 else None
    if not isinstance(marker, dict) or marker.get('writer') != 'ptr':
        return None
    pid = marker.get('pid')
    return pid if isinstance(pid, int) and pid > 0 else None


def _write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, sort_keys=False)
    tmp = path.with_name(f'{_MANIFEST_TEMP}{os.getpid()}')
    try:
        make_temp(tmp)
        try:
            (tmp / path.name).write_text(text)
            os.replace(tmp / path.name, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as err:
        raise write_failure(path, err) from err


def _drop_stale_temps(root: Path) -> None:
    """Remove the temp directories of writers that died before renaming them.

    Only directories holding our marker are candidates (never a user's ``.tmp-*``), and a live
    writer's temps are work in progress (``ptr inspect`` during an ingest): kept. Callers run
    this only on a directory already checked to be a dataset.
    """
    candidates = list(root.glob(f'{_MANIFEST_TEMP}*'))
    episodes = root / EPISODES
    if episodes.is_dir() and not episodes.is_symlink():
        candidates += episodes.glob(f'{_TEMP_PREFIX}*')
    for path in candidates:
        if dead_temp(path):
            shutil.rmtree(path, ignore_errors=True)


def _ptr_leftover(path: Path) -> bool:
    """Whether ``path`` in a would-be dataset root is our lock file, or holds nothing but our
    marked temps: of dead writers (removed under the lock), or of a live one that is creating
    the dataset (a second writer is then told that one is writing, not that the folder is
    foreign)."""
    if path.name == LOCK_NAME and path.is_file() and not path.is_symlink():
        return True
    if path.name == EPISODES and path.is_dir() and not path.is_symlink():
        return all(p.name.startswith(_TEMP_PREFIX) and temp_owner(p) is not None
                   for p in path.iterdir())
    return path.name.startswith(_MANIFEST_TEMP) and temp_owner(path) is not None


def write_episode(root: Path, episode: EpisodeData) -> Path:
    """Write ``episode`` under ``root/episodes`` atomically and return its directory.

    The manifest is *not* touched: the caller (one process) adds the entry with
    ``Dataset.add_episodes`` so that parallel workers never race on it. A failed write (disk
    full, read-only) removes its temp and raises ``DatasetWriteError`` naming ``root``.
    """
    check_episode_id(episode.id, where=str(root))
    episodes = root / EPISODES
    final = episodes / episode.id
    if final.exists():
        msg = f'{final}: episode already exists'
        raise DatasetError(msg)
    tmp = episodes / f'{_TEMP_PREFIX}{episode.id}-{os.getpid()}'
    try:
        episodes.mkdir(parents=True, exist_ok=True)
        if temp_owner(tmp) == os.getpid():  # this process's own, from an earlier failed write
            shutil.rmtree(tmp)
        make_temp(tmp)
    except FileExistsError as err:
        msg = f'{tmp}: exists and is not a temp of this process; remove it by hand'
        raise DatasetError(msg) from err
    except OSError as err:
        raise write_failure(root, err) from err
    try:
        _fill(tmp, episode)
        os.replace(tmp, final)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and final.exists():  # another writer renamed it in first
            msg = f'{final}: episode already exists'
            raise DatasetError(msg) from err
        if isinstance(err, OSError):
            raise write_failure(root, err) from err
        raise
    (final / TEMP_MARKER).unlink(missing_ok=True)  # a finished episode is no temp
    return final


def _fill(tmp: Path, episode: EpisodeData) -> None:
    """The arrays and ``meta.json`` of ``episode`` into its temp directory."""
    _save(tmp / 'timestamp.npy', episode.timestamp.astype(np.int64))
    _save(tmp / 'state.npy', episode.state.astype(np.float32))
    _save(tmp / 'action.npy', episode.action.astype(np.float32))
    _save(tmp / 'state_valid.npy', episode.state_valid.astype(np.bool_))
    _save(tmp / 'action_valid.npy', episode.action_valid.astype(np.bool_))
    for role, frames in episode.images.items():
        _save(tmp / 'images' / f'{role}.npy', frames)
        _save(tmp / 'images' / f'{role}_valid.npy', episode.image_valid[role].astype(np.bool_))
    meta = {
        'id': episode.id,
        'robot': episode.robot,
        'length': episode.length,
        'task': episode.task,
        'source': episode.source,
        'content_hash': episode.content_hash,
        'tags': episode.tags,
        'camera_roles': sorted(episode.images),
        'sync_report': episode.sync_report,
        'part': list(episode.part),
    }
    (tmp / 'meta.json').write_text(json.dumps(meta, indent=1))


def compute_stats(
    arrays: Iterable[tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]],
) -> FeatureStats | None:
    """Statistics over the valid rows of several ``[T, D]`` arrays (None when no valid row)."""
    rows = [np.asarray(a, dtype=np.float64)[np.asarray(v, dtype=bool)] for a, v in arrays]
    rows = [r for r in rows if len(r)]
    if not rows:
        return None
    data = np.concatenate(rows, axis=0)
    return FeatureStats(
        count=len(data),
        min=data.min(axis=0).tolist(),
        max=data.max(axis=0).tolist(),
        mean=data.mean(axis=0).tolist(),
        std=data.std(axis=0).tolist(),
        p01=np.percentile(data, 1, axis=0).tolist(),
        p99=np.percentile(data, 99, axis=0).tolist(),
    )


def _check_manifest(file: Path, manifest: Any) -> None:
    """Refuse a manifest whose episode index is malformed or names paths (before any use)."""
    entries = manifest.get('episodes')
    if not isinstance(entries, list) or not isinstance(manifest.get('robots'), dict):
        msg = f'{file}: episodes must be a list and robots a mapping'
        raise DatasetError(msg)
    for entry in entries:
        if not isinstance(entry, dict) or not {'id', 'robot'} <= set(entry):
            msg = f'{file}: episode entry {entry!r} lacks id or robot'
            raise DatasetError(msg)
        check_episode_id(entry['id'], where=str(file))


def check_target(root: Path) -> None:
    """Refuse, writing nothing, a ``root`` that is neither a dataset, missing nor empty."""
    if root.is_symlink() and not root.exists():
        msg = f'{root}: is a dangling symlink, not a dataset directory; choose another --out'
        raise DatasetError(msg)
    if root.exists() and not root.is_dir():
        msg = f'{root}: is a file, not a dataset directory; choose another --out'
        raise DatasetError(msg)
    if not root.is_dir() or (root / MANIFEST).exists():
        return
    foreign = sorted(p.name for p in root.iterdir() if not _ptr_leftover(p))
    if foreign:
        shown = ', '.join(foreign[:3]) + (', ...' if len(foreign) > 3 else '')
        msg = (f'{root}: exists, is not empty ({shown}) and is not a ptr dataset (no '
               f'{MANIFEST}); choose another --out')
        raise DatasetError(msg)


@contextlib.contextmanager
def dataset_lock(root: str | Path, what: str) -> Iterator[Path]:
    """Be the one writer of the dataset folder ``root`` (``what``, e.g. ``'ptr ingest'``, names
    it to a second writer, which fails at once with ``WriterBusyError``).

    ``root`` is checked (``check_target``) before the lock file is made in it, so a folder
    that is not ours is refused untouched; then again under the lock by ``create_or_open``.
    """
    root = Path(root)
    file = root / LOCK_NAME
    if file.is_symlink() or (file.exists() and not file.is_file()):  # never write through it
        msg = f'{file}: is not a lock file ptr made (a symlink or a folder); remove it'
        raise DatasetError(msg)
    refuse_if_busy(root)  # a live writer is said first: its half-made temps are not "foreign"
    check_target(root)
    with writer_lock(root, what) as lock:
        yield lock


@contextlib.contextmanager
def scratch_dir(root: Path) -> Iterator[Path]:
    """A marked temp directory in the dataset ``root`` for a writer's intermediate files
    (a salvaged bag), removed on exit; a killed writer's is removed by the next writer."""
    path = root / EPISODES / f'{_TEMP_PREFIX}scratch-{os.getpid()}'
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if temp_owner(path) == os.getpid():
            shutil.rmtree(path)
        make_temp(path)
    except OSError as err:
        raise write_failure(root, err) from err
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Dataset:
    """A dataset directory: its manifest and memory-mapped episodes."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self._episodes: dict[str, Episode] = {}

    # -- creation and opening -------------------------------------------------------------
    @classmethod
    def create_or_open(cls, root: str | Path, *, rate_hz: float) -> Dataset:
        """Open ``root`` for writing if it is a dataset, else create an empty one there.

        The caller holds ``dataset_lock(root, ...)``: this adopts complete episode directories
        a killed writer left out of the manifest and removes the temps of dead writers.
        Checked first, before anything is written or removed: ``root`` is a dataset, or missing,
        or an empty directory. Anything else (a file, a folder of other files) is refused.
        """
        root = Path(root)
        check_target(root)
        if (root / MANIFEST).exists():
            ds = cls._read(root)
            if abs(ds.manifest['rate_hz'] - rate_hz) > 1e-9:
                msg = (
                    f'{root}: dataset is at {ds.manifest["rate_hz"]} Hz, the profile asks for '
                    f'{rate_hz} Hz; write to a new --out directory'
                )
                raise DatasetError(msg)
            ds._adopt_orphans()
            return ds
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_failure(root, err) from err
        _drop_stale_temps(root)  # a run killed before anything landed: only its marked temps
        manifest = Manifest(
            schema_version=SCHEMA_VERSION, rate_hz=float(rate_hz), robots={}, episodes=[],
            stats={}, tasks=[],
        )
        ds = cls(root, manifest)
        ds.save_manifest()
        return ds

    @classmethod
    def open(cls, root: str | Path) -> Dataset:
        """Open ``root`` for reading: nothing in it is written, adopted or removed.

        Episode folders the manifest does not list (a writer was killed before indexing them,
        or one is still running) are named in one warning and ignored.
        """
        ds = cls._read(Path(root))
        ds._warn_unindexed()
        return ds

    @classmethod
    def _read(cls, root: Path) -> Dataset:
        file = root / MANIFEST
        if not file.is_file():
            msg = f'{root}: not a ptr dataset (no {MANIFEST})'
            raise DatasetError(msg)
        manifest: Manifest = read_json(file, 'dataset manifest', error=DatasetError)
        version = manifest.get('schema_version')
        if version != SCHEMA_VERSION:
            msg = f'{file}: schema_version {version!r}, this ptr reads {SCHEMA_VERSION}'
            raise DatasetError(msg)
        _check_manifest(file, manifest)
        manifest['robots'] = {name: read_robot(record, where=f'{file}: robot {name!r}')
                              for name, record in manifest['robots'].items()}
        return cls(root, manifest)

    def _unindexed(self) -> list[Path]:
        """Complete-looking episode directories the manifest does not list."""
        episodes = self.root / EPISODES
        if not episodes.is_dir() or episodes.is_symlink():
            return []
        known = set(self.episode_ids)
        return [
            p for p in sorted(episodes.iterdir())
            if not p.name.startswith('.') and p.name not in known and p.is_dir()
            and not p.is_symlink() and (p / 'meta.json').is_file()
        ]

    def _warn_unindexed(self) -> None:
        found = self._unindexed()
        key = (str(self.root.resolve()), tuple(p.name for p in found))
        if found and key not in _WARNED:  # once per process (a command may open it twice)
            _WARNED.add(key)
            shown = ', '.join(p.name for p in found[:3]) + (', ...' if len(found) > 3 else '')
            log.warning('%s: %d episode folder(s) not in %s (%s), ignored: a writer stopped '
                        'before indexing them (or is still running); the next `ptr ingest` into '
                        'this folder with their robot adopts them', self.root / EPISODES,
                        len(found), MANIFEST, shown)

    def _adopt_orphans(self) -> None:
        """Index complete episode directories a crash left out of the manifest; drop temps.

        Writers only (under the dataset's lock)."""
        episodes = self.root / EPISODES
        if not episodes.is_dir():
            return
        _drop_stale_temps(self.root)
        for path in episodes.iterdir():  # killed between rename and unmarking: finish that
            if not path.name.startswith('.') and dead_temp(path):
                (path / TEMP_MARKER).unlink(missing_ok=True)
        # Only what write_episode made: meta.json names this very directory (anything else is
        # left alone). Episodes of a robot the manifest does not know yet wait for its profile.
        adopt = []
        for path in self._unindexed():
            try:
                ep = Episode(path)
            except DatasetError as err:
                log.warning('%s: not adopted: %s', path, err)
                continue
            if ep.id == path.name and ep.robot in self.manifest['robots']:
                adopt.append(ep)
        if adopt:
            self.add_episodes(adopt, robots={})

    def drop_stale_temps(self) -> None:
        """Remove temp files and directories of writers that died (see ``write_episode``)."""
        _drop_stale_temps(self.root)

    def adopt_orphans(self) -> None:
        """Index complete episode directories not in the manifest (after a crash)."""
        self._adopt_orphans()

    # -- writing ---------------------------------------------------------------------------
    def save_manifest(self) -> None:
        """Write the manifest, each robot as its record (the profile; the rest is derived)."""
        robots = {name: robot_record(e) for name, e in self.manifest['robots'].items()}
        _write_json_atomic(self.root / MANIFEST, {**self.manifest, 'robots': robots})

    def add_episodes(
        self,
        episodes: Sequence[Episode | EpisodeData],
        *,
        robots: Mapping[str, RobotEntry],
        refresh_stats: bool = True,
    ) -> None:
        """Index episodes already written with ``write_episode``; refresh stats; save.

        The index stays sorted by episode id and the task list sorted, so the manifest does not
        depend on the order parallel workers finish in. ``refresh_stats=False`` defers the
        statistics to one ``refresh_stats()`` call after a batch of additions.
        """
        for name, entry in robots.items():
            self.manifest['robots'].setdefault(name, entry)
        touched = set()
        for ep in episodes:
            if ep.robot not in self.manifest['robots']:
                msg = f'{self.root}: episode {ep.id} has robot {ep.robot!r} without a robot entry'
                raise DatasetError(msg)
            meta_source = ep.meta['source'] if isinstance(ep, Episode) else ep.source
            meta_hash = ep.meta['content_hash'] if isinstance(ep, Episode) else ep.content_hash
            self.manifest['episodes'].append(
                EpisodeEntry(
                    id=ep.id, robot=ep.robot, length=ep.length, task=ep.task,
                    source=meta_source, content_hash=meta_hash, tags=dict(ep.tags),
                )
            )
            if ep.task and ep.task not in self.manifest['tasks']:
                self.manifest['tasks'].append(ep.task)
            touched.add(ep.robot)
        self.manifest['episodes'].sort(key=lambda e: e['id'])
        self.manifest['tasks'].sort()
        if refresh_stats:
            for robot in sorted(touched):
                self._refresh_stats(robot)
        self.save_manifest()

    def refresh_stats(self) -> None:
        """Recompute every robot's statistics from its episodes on disk; save."""
        for robot in sorted(self.manifest['robots']):
            self._refresh_stats(robot)
        self.save_manifest()

    def remove_episodes(self, episode_ids: Iterable[str]) -> None:
        """Drop episodes from the index (saved first), then delete their directories."""
        drop = {check_episode_id(i, where=str(self.root)) for i in episode_ids}
        robots = {e['robot'] for e in self.manifest['episodes'] if e['id'] in drop}
        self.manifest['episodes'] = [e for e in self.manifest['episodes'] if e['id'] not in drop]
        for robot in sorted(robots):
            self._refresh_stats(robot)
        self.save_manifest()
        for episode_id in sorted(drop):
            self._episodes.pop(episode_id, None)
            shutil.rmtree(self.root / EPISODES / episode_id, ignore_errors=True)

    def _refresh_stats(self, robot: str) -> None:
        eps = [self.episode(e['id']) for e in self.manifest['episodes'] if e['robot'] == robot]
        stats: dict[str, FeatureStats] = {}
        for feature in STAT_FEATURES:
            got = compute_stats(
                (getattr(ep, feature), getattr(ep, f'{feature}_valid')) for ep in eps
            )
            if got is not None:
                stats[feature] = got
        self.manifest['stats'][robot] = stats

    # -- reading ---------------------------------------------------------------------------
    @property
    def episode_ids(self) -> list[str]:
        return [e['id'] for e in self.manifest['episodes']]

    def episode(self, episode_id: str) -> Episode:
        if episode_id not in self._episodes:
            path = self.root / EPISODES / check_episode_id(episode_id, where=str(self.root))
            if not path.is_dir():
                msg = f'{self.root}: episode {episode_id} is in the manifest but not on disk'
                raise DatasetError(msg)
            self._episodes[episode_id] = Episode(path)
        return self._episodes[episode_id]

    def episodes(self) -> list[Episode]:
        return [self.episode(i) for i in self.episode_ids]

    def ingested_hashes(self) -> set[str]:
        return {e['content_hash'] for e in self.manifest['episodes'] if e['content_hash']}

    def __len__(self) -> int:
        return len(self.manifest['episodes'])
