"""A LeRobot v2.1 / v3.0 folder's metadata, read and checked against its data.

``LeRobotSource.open(root)`` lists the episodes from the metadata *and* the data files and trusts
the data: ``info.json`` totals that disagree are a warning (``LeRobotSource.warnings``), an
episode whose data file is missing gives one line naming the episode and the file; videos that
sit under ``video/`` where ``info.json`` says ``videos/`` (or the other way) are read where they
are, told in one warning. Reading an episode's frames is ``bag_tools.lerobot.reader``.

The folder is untrusted input: its path templates are filled without ``str.format`` and every
file they name must resolve inside it (``format.fill_template``, ``format.inside``); a malformed
metadata field is one ``LeRobotError`` line naming the file, the row and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.lerobot.format import (
    DEFAULT_CHUNKS_SIZE,
    INFO,
    LeRobotError,
    absent,
    feature_names,
    feature_width,
    fill_template,
    inside,
    num_rows,
    optional_file,
    read_info,
    read_json,
    read_jsonl,
    read_table,
    shown,
)

__all__ = ['PTR_META', 'VIDEO_DIRS', 'EpisodeRef', 'LeRobotSource', 'VideoRef']

#: The top folders LeRobot sets keep videos in (info.json may say one, the files be in the other).
VIDEO_DIRS = ('videos', 'video')
#: Written by ptr's exporter: ``{"robot": {"profile": ...}}``, the robot's record.
PTR_META = Path('meta') / 'ptr.json'


@dataclass(frozen=True)
class VideoRef:
    path: Path
    from_s: float  # where the episode starts inside the file
    to_s: float | None


@dataclass(frozen=True)
class EpisodeRef:
    """Where one episode's rows and frames are."""

    index: int
    data_file: Path
    length: int | None  # what the metadata says (None: not listed)
    tasks: tuple[str, ...] = ()
    videos: Mapping[str, VideoRef] = field(default_factory=dict)
    ptr: Mapping[str, Any] = field(default_factory=dict)  # ptr/* columns of a ptr export



def _field(row: Mapping[str, Any], key: str, where: str, expected: str,
           ok: Callable[[Any], bool]) -> Any:
    """``row[key]`` (None when absent or null) when ``ok`` accepts it; else one line: ``where``
    names the file, row and ``key``/``column``, ``expected`` what it should hold."""
    value = row.get(key)
    if value is not None and not ok(value):
        msg = f'{where} {key}: expected {expected}, got {shown(value)}'
        raise LeRobotError(msg)
    return value


def _opt_index(row: Mapping[str, Any], key: str, where: str) -> int | None:
    """``row[key]`` as a non-negative integer (``3.0`` is 3), None when absent or null."""
    value = _field(row, key, where, 'a non-negative integer',
                   lambda v: (isinstance(v, float) and v.is_integer() and v >= 0)
                   or (isinstance(v, int) and not isinstance(v, bool) and v >= 0))
    return None if value is None else int(value)


def _index(row: Mapping[str, Any], key: str, where: str) -> int:
    value = _opt_index(row, key, where)
    if value is None:
        msg = f'{where} {key}: missing'
        raise LeRobotError(msg)
    return value


def _seconds(row: Mapping[str, Any], key: str, where: str) -> float | None:
    """``row[key]``: a finite time in seconds >= 0, None when absent or null."""
    value = _field(row, key, where, 'seconds (a finite number >= 0)',
                   lambda v: not isinstance(v, bool) and isinstance(v, (int, float))
                   and math.isfinite(v) and 0 <= v < 1e9)
    return None if value is None else float(value)


def _texts(row: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = _field(row, key, where, 'a list of strings',
                   lambda v: isinstance(v, list) and all(isinstance(t, str) for t in v))
    return tuple(value or ())


def _text(row: Mapping[str, Any], key: str, where: str) -> str:
    value = _field(row, key, where, 'a string', lambda v: isinstance(v, str))
    if value is None:
        msg = f'{where} {key}: expected a string, got None'
        raise LeRobotError(msg)
    return str(value)


def _read_ptr_meta(root: Path) -> dict[str, Any]:
    """``meta/ptr.json`` of a ptr export ({} when absent): ``robot.profile`` is an object."""
    file = root / PTR_META
    if not optional_file(file):
        return {}
    meta = read_json(file)
    robot = meta.get('robot')
    if robot is not None and not (isinstance(robot, Mapping)
                                  and isinstance(robot.get('profile'), Mapping)):
        msg = f'{file}: key robot: expected an object with a profile object, got {shown(robot)}'
        raise LeRobotError(msg)
    return meta



class LeRobotSource:
    """One LeRobot dataset folder, its metadata read and checked against its data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.info = read_info(root)
        self.version: str = self.info['codebase_version']
        self.fps = float(self.info['fps'])
        self.features: dict[str, Any] = dict(self.info['features'])
        self.warnings: list[str] = []
        self.missing: dict[int, str] = {}  # episode index -> one line (data file missing)
        self.tasks: dict[int, str] = {}
        self.episodes: dict[int, EpisodeRef] = {}
        self.ptr_meta = _read_ptr_meta(root)
        if self.version == 'v3.0':
            self._open_v3()
        else:
            self._open_v21()
        self._find_videos()
        self._check_totals()

    @classmethod
    def open(cls, root: str | Path) -> LeRobotSource:
        return cls(Path(root))

    # -- listing -------------------------------------------------------------------------
    def _video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get('dtype') == 'video']

    def _path(self, key: str, what: str = '', **values: int | str) -> Path:
        """A data or video file named by ``info.json``'s template ``key``: placeholders filled
        (no ``str.format``), the result confined to the dataset folder."""
        where = f'{self.root / INFO}: key {key}{what}'
        return inside(self.root, fill_template(self.info[key], values, where=where), where=where)

    def _open_v3(self) -> None:
        tasks_file = self.root / 'meta' / 'tasks.parquet'
        if optional_file(tasks_file):
            self.tasks = _tasks_v3(tasks_file)
        episodes = self.root / 'meta' / 'episodes'
        files = sorted(episodes.glob('chunk-*/file-*.parquet')) if episodes.is_dir() else []
        if not files:
            msg = f'{self.root}: no meta/episodes/chunk-*/file-*.parquet (a v3.0 dataset has them)'
            raise LeRobotError(msg)
        for file in files:
            for n, row in enumerate(read_table(file).to_pylist()):
                ref = self._episode_v3(row, f'{file}: row {n}: column')
                self.episodes[ref.index] = ref
        self._trust_data_v3()

    def _episode_v3(self, row: Mapping[str, Any], where: str) -> EpisodeRef:
        """One row of ``meta/episodes``: where the episode's rows and frames are."""
        idx = _index(row, 'episode_index', where)
        data = self._path('data_path', chunk_index=_opt_index(row, 'data/chunk_index', where)
                          or 0, file_index=_opt_index(row, 'data/file_index', where) or 0)
        videos = {}
        for key in self._video_keys():
            col = f'videos/{key}'
            if row.get(f'{col}/chunk_index') is None or not self.info.get('video_path'):
                continue  # no file named for it: the camera is reported missing
            path = self._path('video_path', f' (feature {shown(key)})', video_key=key,
                              chunk_index=_index(row, f'{col}/chunk_index', where),
                              file_index=_index(row, f'{col}/file_index', where))
            videos[key] = VideoRef(path, _seconds(row, f'{col}/from_timestamp', where) or 0.0,
                                   _seconds(row, f'{col}/to_timestamp', where))
        ptr = {k.removeprefix('ptr/'): v for k, v in row.items() if k.startswith('ptr/')}
        return EpisodeRef(idx, data, _opt_index(row, 'length', where),
                          _texts(row, 'tasks', where), videos, ptr)

    def _trust_data_v3(self) -> None:
        """Row counts per episode from the data files themselves (the metadata may be stale)."""
        import pyarrow as pa

        counts: dict[int, int] = {}
        for file in sorted({ref.data_file for ref in self.episodes.values()}):
            if not file.is_file():
                continue
            num_rows(file)  # refuse a footer claiming more rows than ptr reads, before reading
            col = read_table(file, ['episode_index']).column('episode_index')
            if not pa.types.is_integer(col.type) or col.null_count:
                msg = (f'{file}: column episode_index: expected integers without nulls, got '
                       f'{col.type} ({col.null_count} null)')
                raise LeRobotError(msg)
            uniq, n = np.unique(col.to_numpy(), return_counts=True)
            for i, c in zip(uniq.tolist(), n.tolist()):
                counts[int(i)] = counts.get(int(i), 0) + int(c)
        self._check_rows(counts, 'meta/episodes')

    def _check_rows(self, rows: dict[int, int], listing: str) -> None:
        """``rows``: episode index -> rows its data file holds, the count used. An episode
        without its data file, or without rows in it, is missing (one line each); a ``length``
        in ``listing`` that disagrees is a warning."""
        self.rows = rows
        for idx, ref in self.episodes.items():
            file = ref.data_file.relative_to(self.root)
            if not ref.data_file.is_file():
                self.missing[idx] = (f'{self.root}: episode {idx}: data file {file} '
                                     f'{absent(ref.data_file)}')
            elif idx not in rows:
                self.missing[idx] = f'{self.root}: episode {idx}: no rows in {file}'
            elif ref.length is not None and ref.length != rows[idx]:
                self.warnings.append(
                    f'{self.root}: episode {idx}: {listing} says length {ref.length}, '
                    f'the data holds {rows[idx]} rows; using the data')

    def _listed_v21(self) -> dict[int, tuple[str, dict[str, Any]]]:
        """``meta/tasks.jsonl`` into ``self.tasks``; ``meta/episodes.jsonl`` by episode index."""
        meta = self.root / 'meta'
        if optional_file(meta / 'tasks.jsonl'):
            for where, row in read_jsonl(meta / 'tasks.jsonl'):
                self.tasks[_index(row, 'task_index', where)] = _text(row, 'task', where)
        listed: dict[int, tuple[str, dict[str, Any]]] = {}
        if optional_file(meta / 'episodes.jsonl'):
            for where, row in read_jsonl(meta / 'episodes.jsonl'):
                listed[_index(row, 'episode_index', where)] = (where, row)
        return listed

    def _open_v21(self) -> None:
        listed = self._listed_v21()
        chunks = int(self.info.get('chunks_size') or DEFAULT_CHUNKS_SIZE)
        data_dir = self.root / 'data'
        found = {int(m.group(1)): p for p in data_dir.glob('chunk-*/episode_*.parquet')
                 if (m := re.fullmatch(r'episode_(\d+)\.parquet', p.name))}
        for idx in sorted(set(listed) | set(found)):
            where, row = listed.get(idx, ('', {}))
            data = self._path('data_path', episode_chunk=idx // chunks, episode_index=idx)
            videos = {
                key: VideoRef(self._path('video_path', f' (feature {shown(key)})',
                                         episode_chunk=idx // chunks, video_key=key,
                                         episode_index=idx), 0.0, None)
                for key in self._video_keys()
            } if self.info.get('video_path') else {}
            self.episodes[idx] = EpisodeRef(idx, data, _opt_index(row, 'length', where),
                                            _texts(row, 'tasks', where), videos)
        self._check_rows({idx: num_rows(ref.data_file) for idx, ref in self.episodes.items()
                          if ref.data_file.is_file()}, 'meta/episodes.jsonl')

    def _find_videos(self) -> None:
        """Videos that are not where ``video_path`` says but under the other of ``videos/``
        and ``video/`` (both spellings are in published sets) are read where they are; one
        warning says so."""
        moved: set[Path] = set()
        for idx, ref in self.episodes.items():
            found = {key: replace(video, path=alt) for key, video in ref.videos.items()
                     if (alt := self._elsewhere(video.path)) is not None}
            if found:
                self.episodes[idx] = replace(ref, videos={**ref.videos, **found})
                moved.update(v.path for v in found.values())
        if moved:
            said = self.info['video_path'].split('/', 1)[0]
            there = next(iter(moved)).relative_to(self.root).parts[0]
            self.warnings.append(
                f'{self.root}: meta/info.json video_path puts the videos under {said}/, they '
                f'are under {there}/ ({len(moved)} file(s)); reading them there')

    def _elsewhere(self, path: Path) -> Path | None:
        """``path`` under the other top folder of ``VIDEO_DIRS`` when only that file exists
        (confined to the dataset folder like every path)."""
        if path.is_file():
            return None
        parts = path.relative_to(self.root).parts
        if len(parts) < 2 or parts[0] not in VIDEO_DIRS:
            return None
        for folder in VIDEO_DIRS:
            if folder != parts[0]:
                alt = inside(self.root, str(Path(folder, *parts[1:])),
                             where=f'{self.root / INFO}: key video_path')
                if alt.is_file():
                    return alt
        return None

    def _check_totals(self) -> None:
        present = len(self.rows)
        frames = sum(self.rows.values())
        stale = []
        if self.info.get('total_episodes') not in (None, present):
            stale.append(f'total_episodes {self.info["total_episodes"]}')
        if self.info.get('total_frames') not in (None, frames):
            stale.append(f'total_frames {self.info["total_frames"]}')
        split = str((self.info.get('splits') or {}).get('train', ''))
        if (m := re.fullmatch(r'(\d+):(\d+)', split)) and int(m.group(2)) > max(
                self.episodes, default=-1) + 1:
            stale.append(f'splits.train "{split}"')
        if stale:
            self.warnings.insert(0, (
                f'{self.root}: meta/info.json says {", ".join(stale)}; the data holds '
                f'{present} episode(s), {frames} frames; using the data'))
        if self.missing:
            first = next(iter(self.missing.values())).split(': ', 1)[1]
            self.warnings.append(
                f'{self.root}: {len(self.missing)} of {len(self.episodes)} listed episode(s) '
                f'have no data (first: {first}); select present ones with --episodes')

    @property
    def present(self) -> list[int]:
        """Indices of the episodes whose data is there, ascending."""
        return sorted(self.rows)

    # -- names and limits ----------------------------------------------------------------
    def feature(self, key: str) -> Mapping[str, Any]:
        if key not in self.features:
            msg = (f'{self.root}: meta/info.json has no feature {key!r} (has '
                   f'{", ".join(sorted(self.features))})')
            raise LeRobotError(msg)
        feat: Mapping[str, Any] = self.features[key]
        return feat

    def width(self, key: str) -> int:
        """Values per frame of the vector feature ``key`` (bounded, see ``feature_width``)."""
        return feature_width(self.feature(key), key=key, where=str(self.root / INFO))

    def names(self, keys: Sequence[str]) -> list[str]:
        """The value names of ``keys`` concatenated; a clash is prefixed with its key."""
        out: list[str] = []
        for key in keys:
            for name in feature_names(key, self.feature(key), where=str(self.root / INFO)):
                out.append(name if name not in out else f'{key}.{name}')
        return out

    def state_limits(self, keys: Sequence[str]) -> tuple[list[float], list[float]] | None:
        """Dataset-wide min/max of ``keys`` from ``meta/stats.json`` (v3) or the per-episode
        stats (v2.1); None when there are none for them (or they are not finite). Malformed
        stats are one line naming the file and key."""
        stats_file = self.root / 'meta' / 'stats.json'
        per_ep = self.root / 'meta' / 'episodes_stats.jsonl'
        lower: list[float] = []
        upper: list[float] = []
        for key in keys:
            width = self.width(key)
            if optional_file(stats_file):
                stats = read_json(stats_file)
                got = _min_max(stats.get(key), width, f'{stats_file}: key {key}')
            elif optional_file(per_ep):
                pairs = [_min_max(_stats_of(row, where).get(key), width, f'{where} stats.{key}')
                         for where, row in read_jsonl(per_ep)]
                got = None if not pairs or any(p is None for p in pairs) else (
                    np.min([p[0] for p in pairs if p], axis=0),
                    np.max([p[1] for p in pairs if p], axis=0))
            else:
                return None
            if got is None:
                return None
            lower += got[0].tolist()
            upper += got[1].tolist()
        return (lower, upper) if np.isfinite(lower + upper).all() else None


def _stats_of(row: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    stats = row.get('stats')
    if not isinstance(stats, Mapping):
        msg = f'{where} stats: expected an object, got {shown(stats)}'
        raise LeRobotError(msg)
    return stats


def _min_max(entry: Any, width: int, where: str) -> tuple[npt.NDArray[np.float64],
                                                          npt.NDArray[np.float64]] | None:
    """A feature's ``{min, max}`` stats as two vectors of ``width`` numbers (None: no entry)."""
    if entry is None:
        return None
    if not isinstance(entry, Mapping):
        msg = f'{where}: expected an object with min and max, got {shown(entry)}'
        raise LeRobotError(msg)
    out = []
    for stat in ('min', 'max'):
        value = entry.get(stat)
        try:
            vec = np.ravel(np.asarray(value, np.float64))
        except (TypeError, ValueError):
            vec = np.zeros(0)
        if value is None or isinstance(value, (str, bool)) or vec.size != width:
            msg = f'{where}.{stat}: expected {width} numbers, got {shown(value)}'
            raise LeRobotError(msg)
        out.append(vec)
    return out[0], out[1]


def _tasks_v3(file: Path) -> dict[int, str]:
    """``meta/tasks.parquet``: task index -> text (the text is the pandas index column when
    LeRobot wrote it from a DataFrame)."""
    table = read_table(file)
    text = 'task' if 'task' in table.column_names else '__index_level_0__'
    for col in ('task_index', text):
        if col not in table.column_names:
            msg = f'{file}: column {"task" if col == text else col} missing'
            raise LeRobotError(msg)
    return {_index(row, 'task_index', f'{file}: row {n}: column'):
            _text(row, text, f'{file}: row {n}: column')
            for n, row in enumerate(table.to_pylist())}

