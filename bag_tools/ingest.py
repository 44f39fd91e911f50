"""Ingest into a dataset: one driver, two sources (rosbag files, LeRobot episodes).

``ingest(bags, profile, out, workers=N)`` is the library entry point for bags (``ptr ingest``
and the benchmarks call it); ``bag_tools.lerobot.importer.import_lerobot`` is the one for
LeRobot folders. Both hand a ``Source`` to ``ingest_source``: each unit (a bag, a LeRobot
episode) is converted by ``Source.convert`` and written as episode directories by whoever runs
it (``write_episode`` renames a finished temp directory into place): this process, a pool of
worker processes (``local_runner``) or Ray tasks (``bag_tools.fleet``). Only this process
touches the manifest. Re-running resumes: a unit whose every episode is indexed (same robot,
same content hash) is skipped; episodes of a unit cut short by a crash are dropped and it is
redone.

One writer per dataset: the run holds the dataset's writer lock (``dataset_lock``), so a second
``ptr ingest`` into the same ``--out`` fails at once with one line, before it touches anything;
a killed writer's lock goes with its process. A write that fails (disk full, read-only) stops
the run with one line (``DatasetWriteError``), its temps removed. An episode may have at most
``MAX_EPISODE_STEPS`` grid steps (``bag_tools.episodes``), checked before anything is allocated.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import NamedTuple

from bag_tools.dataset import (
    EPISODES,
    MANIFEST,
    TEMP_MARKER,
    Dataset,
    DatasetWriteError,
    Episode,
    EpisodeData,
    RobotEntry,
    check_episode_id,
    dataset_lock,
    scratch_dir,
    write_episode,
)
from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import BagToolsError, DatasetError, IngestError
from bag_tools.lerobot.format import is_lerobot_dataset
from bag_tools.lifetime import die_with
from bag_tools.lock import LOCK_NAME
from bag_tools.profile import RobotProfile
from bag_tools.reader import bag_content_hash, is_bag_path
from bag_tools.robots import robot_entry as entry_of_profile
from bag_tools.robots import shared_image_size

__all__ = [
    'BagResult',
    'BagSource',
    'BagStatus',
    'Collect',
    'IngestResult',
    'Runner',
    'Source',
    'convert_unit',
    'find_bags',
    'ingest',
    'ingest_source',
    'land_episode',
    'local_runner',
    'robot_entry',
]

log = logging.getLogger(__name__)

#: The manifest is rewritten at most this often while bags finish (and once at the end).
MANIFEST_EVERY_S = 2.0


class BagStatus(str, Enum):
    OK = 'ok'
    SKIPPED = 'skipped'
    FAILED = 'failed'


class BagResult(NamedTuple):
    """What became of one bag; ``reason`` is the one-line error or skip reason."""

    path: str
    status: BagStatus
    reason: str = ''
    content_hash: str = ''
    episodes: tuple[str, ...] = ()
    frames: int = 0
    bytes_read: int = 0
    cpu_s: float = 0.0  # CPU seconds the worker spent on this bag


@dataclass
class IngestResult:
    out: Path
    bags: list[BagResult] = field(default_factory=list)

    def count(self, status: BagStatus) -> int:
        return sum(1 for b in self.bags if b.status is status)

    @property
    def ok(self) -> bool:
        return self.count(BagStatus.FAILED) == 0

    @property
    def frames(self) -> int:
        return sum(b.frames for b in self.bags)


ProgressCallback = Callable[[BagResult], None]
Collect = Callable[[BagResult], None]
#: Converts every unit of a source (``convert_unit``) and hands each result to ``collect`` as
#: it finishes: ``runner(source, out, done, collect)``. ``local_runner`` here, Ray in
#: ``bag_tools.fleet``.
Runner = Callable[['Source', Path, frozenset[str], Collect], None]


def robot_entry(profile: RobotProfile) -> RobotEntry:
    """The manifest's entry of the profile's robot: the profile is what it stores, the rest is
    derived from it (``bag_tools.robots``)."""
    return entry_of_profile(profile)


def find_bags(paths: Iterable[str | Path]) -> list[Path]:
    """Bags named directly, and bags found under folders that are not bags themselves."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if is_bag_path(path) or is_lerobot_dataset(path) or not path.is_dir():
            out.append(path)  # a missing or non-bag file fails later with a clear error
            continue
        found = sorted(
            p for p in path.rglob('*')
            if (p.is_file() and p.suffix in ('.bag', '.mcap', '.db3')
                and not (p.parent / 'metadata.yaml').is_file())
            or (p.is_dir() and (p / 'metadata.yaml').is_file())
        )
        if not found:
            out.append(path)
        out += found
    unique: dict[Path, Path] = {}
    for p in out:
        unique.setdefault(p.resolve() if p.exists() else p, p)
    return list(unique.values())


def _bag_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size if path.exists() else 0


class Source(ABC):
    """What one ingest run reads: units (a bag, a LeRobot episode), each converted alone.

    The driver (``ingest_source``) holds the dataset's lock, registers ``robot`` and keeps the
    manifest; ``convert`` runs wherever a unit is sent (this process, a pool worker, a Ray
    task), so a source is pickled to its workers: keep it small and free of open handles.
    """

    #: The robot the dataset records (the manifest's robot entry).
    robot: RobotProfile

    @abstractmethod
    def labels(self) -> list[str]:
        """One name per unit, in run order (a bag's path, ``<folder>#episode=<i>``)."""

    @abstractmethod
    def convert(self, index: int, out: Path, done: frozenset[str]) -> BagResult:
        """Worker: unit ``index`` into episode directories under ``out`` (``write_episode``);
        a unit whose content hash is in ``done`` is skipped. A unit that cannot be converted is
        a FAILED result (one line); only ``DatasetWriteError`` is raised (the run stops)."""


@dataclass(frozen=True)
class BagSource(Source):
    """Bags, one unit each (``ingest``'s source)."""

    paths: tuple[Path, ...]
    robot: RobotProfile
    salvage: bool = False
    max_invalid: float | None = None

    def labels(self) -> list[str]:
        return [str(p) for p in self.paths]

    def convert(self, index: int, out: Path, done: frozenset[str]) -> BagResult:
        return _ingest_one(self.paths[index], self.robot, out, done, self.salvage,
                           self.max_invalid)


def convert_unit(source: Source, index: int, out: Path, done: frozenset[str]) -> BagResult:
    """Worker: one unit of ``source`` (see ``Source.convert``), with the CPU time it took."""
    cpu = time.process_time()
    res = source.convert(index, out, done)
    return res._replace(cpu_s=time.process_time() - cpu)


def land_episode(out: Path, ep: EpisodeData) -> None:
    """``write_episode``, or keep the episode an earlier try of this very unit renamed into
    place (its worker killed before it could report, the unit retried): same id, source and
    content hash, so the same arrays. Anything else already there is refused as before."""
    final = out / EPISODES / ep.id
    if final.is_dir() and not final.is_symlink():
        try:
            meta = json.loads((final / 'meta.json').read_text())
        except (OSError, ValueError):
            meta = None
        if (isinstance(meta, dict) and meta.get('source') == ep.source
                and meta.get('content_hash') == ep.content_hash and ep.content_hash
                and meta.get('robot') == ep.robot):
            (final / TEMP_MARKER).unlink(missing_ok=True)
            return
    write_episode(out, ep)


def _ingest_one(
    path: Path, profile: RobotProfile, out: Path, done: frozenset[str], salvage: bool = False,
    max_invalid: float | None = None,
) -> BagResult:
    try:
        digest = bag_content_hash(path) if path.exists() else ''
        if digest and digest in done:
            return BagResult(str(path), BagStatus.SKIPPED, 'already ingested (same content hash)',
                             digest)
        if salvage:  # a salvaged bag is rewritten into the dataset's folder, not /tmp
            with scratch_dir(out) as scratch:
                episodes = bag_to_episodes(path, profile, content_hash=digest, salvage=True,
                                           scratch=scratch, max_invalid=max_invalid)
        else:
            episodes = bag_to_episodes(path, profile, content_hash=digest,
                                       max_invalid=max_invalid)
        written = []
        for ep in episodes:
            # An existing directory is the same bag under the same name twice in one run
            # (crash leftovers were adopted or dropped by _prepare): refused, nothing removed.
            land_episode(out, ep)
            written.append(ep.id)
        return BagResult(str(path), BagStatus.OK, '', digest, tuple(written),
                         sum(ep.length for ep in episodes), _bag_size(path))
    except DatasetWriteError:
        raise  # the dataset cannot be written: the run stops (every bag would fail alike)
    except BagToolsError as err:
        return BagResult(str(path), BagStatus.FAILED, str(err), '')
    except OSError as err:
        return BagResult(str(path), BagStatus.FAILED, f'{path}: {err}', '')
    except Exception as err:  # a message shape nobody foresaw: lose this bag, not the run
        log.exception('%s: unexpected error', path)
        text = ' '.join(str(err).split())
        return BagResult(str(path), BagStatus.FAILED,
                         f'{path}: unexpected {type(err).__name__}: {text}', '')


def _init_worker(parent: int) -> None:
    import cv2

    die_with(parent)  # a kill -9 of the ingest process leaves no worker behind
    cv2.setNumThreads(1)  # one process per bag; threads inside would only contend


def _prepare(ds: Dataset, profile: RobotProfile) -> frozenset[str]:
    """Register the robot; drop episodes of half-ingested bags; return this robot's done hashes."""
    entry = robot_entry(profile)
    prev = ds.manifest['robots'].get(profile.robot)
    if prev is not None:
        keys = ('state_names', 'action_names', 'camera_roles', 'image_size', 'image_dtypes')
        diff = [k for k in keys if prev[k] != entry[k]]  # type: ignore[literal-required]
        if diff:
            msg = (f'{ds.root}: robot {profile.robot!r} is already in the dataset with a '
                   f'different {diff[0]}; rename the robot in the profile or use another --out')
            raise DatasetError(msg)
        if prev['profile'] != entry['profile']:
            log.warning('%s: robot %r is in the dataset with another profile (same shapes); '
                        'keeping the stored one', ds.root, profile.robot)
    else:
        shared_image_size({**ds.manifest['robots'], profile.robot: entry},
                          where=f'{ds.root}: the profile {profile.source}')
        ds.manifest['robots'][profile.robot] = entry
        ds.save_manifest()
        ds.adopt_orphans()  # episodes a failed earlier run left before its robot was dropped
    by_bag: dict[str, list[Episode]] = {}
    for e in ds.manifest['episodes']:
        if e['robot'] == profile.robot and e['content_hash']:
            by_bag.setdefault(e['content_hash'], []).append(ds.episode(e['id']))
    done, partial = set(), []
    for digest, eps in by_bag.items():
        if len({ep.part for ep in eps}) >= eps[0].part[1]:  # every part of the bag is in
            done.add(digest)
        else:
            partial += [ep.id for ep in eps]
    if partial:
        log.warning('%s: dropping %d episode(s) of bags a crash cut short; redoing those bags',
                    ds.root, len(partial))
        ds.remove_episodes(partial)
    return frozenset(done)


def ingest(
    bags: Sequence[str | Path],
    profile: RobotProfile,
    out: str | Path,
    *,
    workers: int = 1,
    progress: ProgressCallback | None = None,
    salvage: bool = False,
    max_invalid: float | None = None,
    runner: Runner | None = None,
) -> IngestResult:
    """Ingest ``bags`` with ``profile`` into the dataset at ``out`` (created if needed).

    ``salvage``: read truncated bags up to the damage (``bag_tools.salvage``) instead of
    failing them. ``max_invalid``: a bag with a stream invalid at more than this share of its
    grid steps fails (``bag_to_episodes``). ``runner``: where the bags are converted (default:
    here, or a pool of ``workers`` processes; ``bag_tools.fleet.ray_runner``: Ray tasks).

    Bad bags fail one by one (``BagResult.reason``); the others carry on and the dataset stays
    valid. Raises ``DatasetError`` when ``out`` itself cannot be used (before anything is
    written there), ``WriterBusyError`` when another process is writing it, and
    ``DatasetWriteError`` when a write fails (disk full, read-only); episodes that landed stay
    valid. A run that creates ``out`` and ingests nothing leaves nothing behind.
    """
    paths = find_bags(bags)
    if not paths:
        msg = 'no bags given'
        raise IngestError(msg)
    source = BagSource(tuple(paths), profile, salvage, max_invalid)
    return ingest_source(source, out, workers=workers, progress=progress, runner=runner)


def ingest_source(
    source: Source,
    out: str | Path,
    *,
    workers: int = 1,
    progress: ProgressCallback | None = None,
    runner: Runner | None = None,
) -> IngestResult:
    """The one ingest driver: every unit of ``source`` into the dataset at ``out``.

    Under the dataset's writer lock: register ``source.robot`` and drop half-ingested units
    (``_prepare``), convert each unit (``runner``, default ``local_runner(workers)``) into its
    own atomic episode directories, index what landed (the manifest, kept by this process
    only), skip units already in (same robot, same content hash). See ``ingest`` for errors.
    """
    out = Path(out)
    made = [p for p in (out, *out.parents) if not p.exists()]  # folders this run creates
    with dataset_lock(out, 'ptr ingest'):
        created = not (out / MANIFEST).exists()
        ds = Dataset.create_or_open(out, rate_hz=source.robot.rate_hz)
        try:
            return _ingest_into(ds, source, runner or local_runner(workers), progress)
        finally:
            if created and not ds.manifest['episodes']:
                _remove_empty_dataset(ds, made)


def _remove_empty_dataset(ds: Dataset, made: list[Path]) -> None:
    """Undo creating a dataset nothing landed in: its manifest, then empty folders we made.

    A temp a still-running worker holds keeps it a dataset (the next run cleans it up).
    """
    ds.drop_stale_temps()
    episodes = ds.root / EPISODES
    if episodes.is_dir() and any(episodes.iterdir()):
        return
    (ds.root / MANIFEST).unlink(missing_ok=True)
    (ds.root / LOCK_NAME).unlink(missing_ok=True)  # still held (the open file) until we return
    for folder in (episodes, *made):
        try:
            folder.rmdir()
        except OSError:
            if folder != episodes:
                break


def _ingest_into(
    ds: Dataset, source: Source, runner: Runner, progress: ProgressCallback | None,
) -> IngestResult:
    out = ds.root
    robot = source.robot.robot
    new_robot = robot not in ds.manifest['robots']
    done = _prepare(ds, source.robot)
    result = IngestResult(out)
    seen: set[str] = set(done)
    pending: list[str] = []  # written, not yet in the manifest (a crash: adopted on reopen)
    last_flush = time.monotonic()

    def flush() -> None:
        nonlocal last_flush
        if pending:
            ds.add_episodes([ds.episode(i) for i in pending], robots={}, refresh_stats=False)
            pending.clear()
        last_flush = time.monotonic()

    def collect(res: BagResult) -> None:
        if res.status is BagStatus.OK:
            if res.content_hash in seen:  # the same bag twice in one run
                indexed = set(ds.episode_ids) | set(pending)
                for ep_id in res.episodes:
                    if ep_id not in indexed:
                        path = out / EPISODES / check_episode_id(ep_id, where=str(out))
                        shutil.rmtree(path, ignore_errors=True)
                res = res._replace(status=BagStatus.SKIPPED, episodes=(), frames=0,
                                   reason='same content as another bag in this run')
            else:
                seen.add(res.content_hash)
                pending.extend(res.episodes)
                if time.monotonic() - last_flush > MANIFEST_EVERY_S:
                    flush()  # rewriting a large manifest per bag would be quadratic
        elif res.status is BagStatus.FAILED:
            log.warning('%s', res.reason)
        result.bags.append(res)
        if progress is not None:
            progress(res)

    try:
        runner(source, out, done, collect)
    except BaseException:  # the workers are gone: their temps are no work in progress now
        ds.drop_stale_temps()
        raise
    finally:
        flush()  # also on Ctrl-C: index what finished
    if new_robot and not any(e['robot'] == robot for e in ds.manifest['episodes']):
        del ds.manifest['robots'][robot]  # nothing landed: leave no empty robot behind
        ds.manifest['stats'].pop(robot, None)
    ds.refresh_stats()
    ds.drop_stale_temps()  # a writer killed just before this run started is gone by now
    order = {label: i for i, label in enumerate(source.labels())}
    result.bags.sort(key=lambda b: order.get(b.path, 0))
    return result


def local_runner(workers: int) -> Runner:
    """Units converted in this process (``workers`` <= 1, or one unit) or in a pool of
    ``workers`` processes, one unit each."""
    return functools.partial(_run_local, workers=workers)


def _run_local(
    source: Source, out: Path, done: frozenset[str], collect: Collect, *, workers: int,
) -> None:
    count = len(source.labels())
    if workers <= 1 or count == 1:
        for index in range(count):
            collect(convert_unit(source, index, out, done))
    else:
        _run_pool(source, out, done, workers, collect)


def _context() -> multiprocessing.context.BaseContext:
    """A fork server that imported bag_tools once (cheap workers, no fork of this process's
    threads); plain spawn where there is none."""
    if 'forkserver' in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context('forkserver')
        # bag_tools.lifetime first: it ties the fork server's life to ours (see there)
        ctx.set_forkserver_preload(['bag_tools.lifetime', 'bag_tools.ingest', 'cv2',
                                    'rosbags.highlevel'])
        return ctx
    return multiprocessing.get_context('spawn')


def _run_pool(
    source: Source, out: Path, done: frozenset[str], workers: int, collect: Collect,
) -> None:
    labels = source.labels()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(labels)), mp_context=_context(),
                               initializer=_init_worker, initargs=(os.getpid(),))
    try:
        # The fork server, resource tracker and workers start with SIGINT blocked, so an early
        # Ctrl-C reaches only this process: one line, no traceback from a half-started helper.
        with _DeferSigint():
            futures: dict[Future[BagResult], str] = {
                pool.submit(convert_unit, source, i, out, done): label
                for i, label in enumerate(labels)
            }
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except DatasetWriteError:
                raise
            except Exception as err:  # a worker died (killed, out of memory)
                res = BagResult(futures[fut], BagStatus.FAILED,
                                f'{futures[fut]}: worker process failed: {err}')
            collect(res)
    except BaseException:  # Ctrl-C: stop now, not after the bags in flight
        _kill_workers(pool)
        raise
    pool.shutdown(wait=True)


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the workers (bags in flight are redone next run), then shut the pool down."""
    procs = list((getattr(pool, '_processes', None) or {}).values())  # shutdown drops it
    for proc in procs:
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:  # gone before the caller looks at what they left
        proc.join(5.0)


class _DeferSigint:
    """Hold Ctrl-C while the pool's processes start; raise it once they are all known.

    The signal mask is blocked so the helpers (fork server, resource tracker, workers) inherit
    it; the Python handler is deferred too, as another thread (e.g. a BLAS pool) may take the
    signal and the interpreter would raise it in the main thread half-way through a spawn.
    """

    def __enter__(self) -> None:
        self.hit = False
        self.masked = hasattr(signal, 'pthread_sigmask')
        self.handled = threading.current_thread() is threading.main_thread()
        if self.handled:
            self.previous = signal.signal(signal.SIGINT, self._note)
        if self.masked:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})

    def _note(self, signum: int, frame: object) -> None:
        self.hit = True

    def __exit__(self, *exc: object) -> None:
        if self.masked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if self.handled:
            signal.signal(signal.SIGINT, self.previous)
            if self.hit:
                raise KeyboardInterrupt
