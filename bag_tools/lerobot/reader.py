"""Reading a LeRobot v2.1 / v3.0 folder: its episodes as the data holds them, one at a time.

``LeRobotSource.open(root)`` lists the episodes from the metadata *and* the data files and trusts
the data: ``info.json`` totals that disagree are a warning (``LeRobotSource.warnings``), an
episode whose data or video file is missing gives one line naming the episode and the file.
``read_episode`` turns one episode into an ``EpisodeData`` at the profile's image size, with a
sync report in ptr's shape (data timestamps against the fps grid, video frame times against the
data timestamps -- what LeRobot's own loader checks with its ``tolerance_s``).

The folder is untrusted input: its path templates are filled without ``str.format`` and every
file they name must resolve inside it (``format.fill_template``, ``format.inside``); sizes are
bounded before anything is allocated (``format.MAX_*``); a malformed metadata field or an
unreadable file is one ``LeRobotError`` line naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import ImageDecodeError
from bag_tools.lerobot.format import (
    DEFAULT_CHUNKS_SIZE,
    INDEX_COLUMNS,
    INFO,
    MAX_EPISODE_BYTES,
    MAX_FILE_ROWS,
    MAX_FRAME_BYTES,
    LeRobotError,
    feature_names,
    feature_width,
    fill_template,
    inside,
    read_info,
    shown,
)
from bag_tools.lerobot.profile import LeRobotCamera, LeRobotProfile
from bag_tools.lerobot.video import DecodedFrames, decode_frames, raw_image
from bag_tools.observation import decode_image
from bag_tools.sync import TopicReport

__all__ = ['EpisodeRef', 'LeRobotSource', 'VideoRef', 'frame_bytes', 'read_episode']

log = logging.getLogger(__name__)

CLOCK = 'timestamp'  # the clock name in sync reports of imported episodes
#: The top folders LeRobot sets keep videos in (info.json may say one, the files be in the other).
VIDEO_DIRS = ('videos', 'video')
PTR_META = Path('meta') / 'ptr.json'  # written by ptr's exporter: the robot entry, verbatim


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


def _absent(path: Path) -> str:
    """Why ``path`` cannot be read as a file: ``is missing`` or ``is not a file``."""
    return 'is not a file' if path.exists() else 'is missing'


def _optional(file: Path) -> bool:
    """Whether an optional metadata file is there; a folder (or socket...) in its place is
    refused with one line."""
    if file.exists() and not file.is_file():
        msg = f'{file}: {_absent(file)}'
        raise LeRobotError(msg)
    return file.is_file()


def _read_text(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as err:
        msg = f'{file}: cannot read: {getattr(err, "strerror", None) or err}'
        raise LeRobotError(msg) from err


def _read_json(file: Path) -> dict[str, Any]:
    """A metadata file holding one JSON object."""
    try:
        data = json.loads(_read_text(file))
    except (ValueError, RecursionError) as err:
        msg = f'{file}: not valid JSON: {err}'
        raise LeRobotError(msg) from err
    if not isinstance(data, dict):
        msg = f'{file}: expected a JSON object, got {shown(data)}'
        raise LeRobotError(msg)
    return data


def _read_jsonl(file: Path) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a JSON-lines file, each with ``<file>: line <n>: key`` for messages."""
    out = []
    for n, line in enumerate(_read_text(file).splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
            except (ValueError, RecursionError) as err:
                msg = f'{file}: line {n}: not valid JSON: {err}'
                raise LeRobotError(msg) from err
            if not isinstance(row, dict):
                msg = f'{file}: line {n}: expected a JSON object, got {shown(row)}'
                raise LeRobotError(msg)
            out.append((f'{file}: line {n}: key', row))
    return out


def _read_table(file: Path, columns: Sequence[str] | None = None,
                filters: Any = None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not file.is_file():  # pyarrow would read a folder as a partitioned dataset
        msg = f'{file}: {_absent(file)}'
        raise LeRobotError(msg)
    try:
        return pq.read_table(file, columns=list(columns) if columns else None, filters=filters)
    except (OSError, pa.ArrowException) as err:
        msg = f'{file}: cannot read parquet: {" ".join(str(err).split())}'
        raise LeRobotError(msg) from err


def _num_rows(file: Path) -> int:
    """Rows of a data file from its footer, refused past ``MAX_FILE_ROWS``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rows = int(pq.read_metadata(file).num_rows)
    except (OSError, pa.ArrowException) as err:
        msg = f'{file}: cannot read parquet: {" ".join(str(err).split())}'
        raise LeRobotError(msg) from err
    if rows > MAX_FILE_ROWS:
        msg = f'{file}: {rows} rows; ptr reads data files of at most {MAX_FILE_ROWS} rows'
        raise LeRobotError(msg)
    return rows


def _opt_index(row: Mapping[str, Any], key: str, where: str) -> int | None:
    """``row[key]`` as a non-negative integer, None when absent or null; ``where`` names the
    file, row and ``key``/``column``."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f'{where} {key}: expected a non-negative integer, got {shown(value)}'
        raise LeRobotError(msg)
    return value


def _index(row: Mapping[str, Any], key: str, where: str) -> int:
    value = _opt_index(row, key, where)
    if value is None:
        msg = f'{where} {key}: missing'
        raise LeRobotError(msg)
    return value


def _seconds(row: Mapping[str, Any], key: str, where: str) -> float | None:
    """``row[key]``: a finite time in seconds >= 0, None when absent or null."""
    value = row.get(key)
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 <= value < 1e9):
        msg = f'{where} {key}: expected seconds (a finite number >= 0), got {shown(value)}'
        raise LeRobotError(msg)
    return float(value)


def _texts(row: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = row.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        msg = f'{where} {key}: expected a list of strings, got {shown(value)}'
        raise LeRobotError(msg)
    return tuple(value)


def _text(row: Mapping[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        msg = f'{where} {key}: expected a string, got {shown(value)}'
        raise LeRobotError(msg)
    return value


def _read_ptr_meta(root: Path) -> dict[str, Any]:
    """``meta/ptr.json`` of a ptr export ({} when absent): ``robot.profile`` is an object."""
    file = root / PTR_META
    if not _optional(file):
        return {}
    meta = _read_json(file)
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
        if _optional(tasks_file):
            self.tasks = _tasks_v3(tasks_file)
        episodes = self.root / 'meta' / 'episodes'
        files = sorted(episodes.glob('chunk-*/file-*.parquet')) if episodes.is_dir() else []
        if not files:
            msg = f'{self.root}: no meta/episodes/chunk-*/file-*.parquet (a v3.0 dataset has them)'
            raise LeRobotError(msg)
        for file in files:
            for n, row in enumerate(_read_table(file).to_pylist()):
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
            _num_rows(file)  # refuse a footer claiming more rows than ptr reads, before reading
            col = _read_table(file, ['episode_index']).column('episode_index')
            if not pa.types.is_integer(col.type) or col.null_count:
                msg = (f'{file}: column episode_index: expected integers without nulls, got '
                       f'{col.type} ({col.null_count} null)')
                raise LeRobotError(msg)
            uniq, n = np.unique(col.to_numpy(), return_counts=True)
            for i, c in zip(uniq.tolist(), n.tolist()):
                counts[int(i)] = counts.get(int(i), 0) + int(c)
        self.rows = counts
        for idx, ref in self.episodes.items():
            if not ref.data_file.is_file():
                self.missing[idx] = (f'{self.root}: episode {idx}: data file '
                                     f'{ref.data_file.relative_to(self.root)} '
                                     f'{_absent(ref.data_file)}')
            elif idx not in counts:
                self.missing[idx] = (f'{self.root}: episode {idx}: no rows in '
                                     f'{ref.data_file.relative_to(self.root)}')
            elif ref.length is not None and ref.length != counts[idx]:
                self.warnings.append(
                    f'{self.root}: episode {idx}: meta/episodes says length {ref.length}, '
                    f'the data holds {counts[idx]} rows; using the data')

    def _listed_v21(self) -> dict[int, tuple[str, dict[str, Any]]]:
        """``meta/tasks.jsonl`` into ``self.tasks``; ``meta/episodes.jsonl`` by episode index."""
        meta = self.root / 'meta'
        if _optional(meta / 'tasks.jsonl'):
            for where, row in _read_jsonl(meta / 'tasks.jsonl'):
                self.tasks[_index(row, 'task_index', where)] = _text(row, 'task', where)
        listed: dict[int, tuple[str, dict[str, Any]]] = {}
        if _optional(meta / 'episodes.jsonl'):
            for where, row in _read_jsonl(meta / 'episodes.jsonl'):
                listed[_index(row, 'episode_index', where)] = (where, row)
        return listed

    def _open_v21(self) -> None:
        listed = self._listed_v21()
        chunks = int(self.info.get('chunks_size') or DEFAULT_CHUNKS_SIZE)
        data_dir = self.root / 'data'
        found = {int(m.group(1)): p for p in data_dir.glob('chunk-*/episode_*.parquet')
                 if (m := re.fullmatch(r'episode_(\d+)\.parquet', p.name))}
        self.rows = {}
        for idx in sorted(set(listed) | set(found)):
            where, row = listed.get(idx, ('', {}))
            length = _opt_index(row, 'length', where)
            data = self._path('data_path', episode_chunk=idx // chunks, episode_index=idx)
            videos = {
                key: VideoRef(self._path('video_path', f' (feature {shown(key)})',
                                         episode_chunk=idx // chunks, video_key=key,
                                         episode_index=idx), 0.0, None)
                for key in self._video_keys()
            } if self.info.get('video_path') else {}
            self.episodes[idx] = EpisodeRef(idx, data, length, _texts(row, 'tasks', where),
                                            videos)
            if not data.is_file():
                self.missing[idx] = (f'{self.root}: episode {idx}: data file '
                                     f'{data.relative_to(self.root)} {_absent(data)}')
                continue
            self.rows[idx] = _num_rows(data)
            if length is not None and length != self.rows[idx]:
                self.warnings.append(
                    f'{self.root}: episode {idx}: meta/episodes.jsonl says length {length}, '
                    f'the data holds {self.rows[idx]} rows; using the data')

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
            if _optional(stats_file):
                stats = _read_json(stats_file)
                got = _min_max(stats.get(key), width, f'{stats_file}: key {key}')
            elif _optional(per_ep):
                pairs = [_min_max(_stats_of(row, where).get(key), width, f'{where} stats.{key}')
                         for where, row in _read_jsonl(per_ep)]
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
    table = _read_table(file)
    text = 'task' if 'task' in table.column_names else '__index_level_0__'
    for col in ('task_index', text):
        if col not in table.column_names:
            msg = f'{file}: column {"task" if col == text else col} missing'
            raise LeRobotError(msg)
    return {_index(row, 'task_index', f'{file}: row {n}: column'):
            _text(row, text, f'{file}: row {n}: column')
            for n, row in enumerate(table.to_pylist())}


def frame_bytes(src: LeRobotSource, profile: LeRobotProfile) -> int:
    """Bytes of one decoded frame (float32 state and action, every camera at the profile's
    size), refused past ``MAX_FRAME_BYTES`` before anything is read."""
    values = sum(src.width(k) for k in (*profile.state, profile.action))
    h, w = profile.image_size
    pixels = sum(h * w * (2 if c.depth else 3) for c in profile.cameras)
    total = 4 * values + pixels
    if total > MAX_FRAME_BYTES:
        msg = (f'{profile.source}: one frame is {total / 2**20:.0f} MiB ({values} state/action '
               f'values, {len(profile.cameras)} camera(s) at {h}x{w}); ptr holds at most '
               f'{MAX_FRAME_BYTES // 2**20} MiB per frame: lower image_size or map fewer cameras')
        raise LeRobotError(msg)
    return total


def _vectors(table: Any, key: str, width: int, where: str) -> npt.NDArray[np.float32]:
    """A ``list<float>`` or ``fixed_size_list<float>[D]`` (or scalar) column as ``[T, D]``."""
    import pyarrow as pa

    col = table.column(key).combine_chunks()
    n = len(col)
    if col.null_count:
        msg = f'{where}: column {key} has {col.null_count} null row(s)'
        raise LeRobotError(msg)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or \
            pa.types.is_fixed_size_list(col.type):
        lengths = col.value_lengths().to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths.min() != width or lengths.max() != width):
            bad = int(np.flatnonzero(lengths != width)[0])
            msg = (f'{where}: column {key} row {bad} has {int(lengths[bad])} values, '
                   f'info.json says {width}')
            raise LeRobotError(msg)
        values = col.flatten().to_numpy(zero_copy_only=False)
    else:
        values = col.to_numpy(zero_copy_only=False)
    try:
        return np.asarray(values, np.float32).reshape(n, width)
    except ValueError as err:
        msg = f'{where}: column {key} does not hold {width} numbers per row'
        raise LeRobotError(msg) from err


def _image_column(table: Any, key: str, size: tuple[int, int], depth: bool,
                  where: str) -> npt.NDArray[Any]:
    """An ``image`` feature (PNG/JPEG bytes in a struct column) decoded at ``size``."""
    import cv2

    frames = []
    for row, cell in enumerate(table.column(key).to_pylist()):
        data = cell.get('bytes') if isinstance(cell, Mapping) else cell
        if not data:
            msg = f'{where}: column {key} row {row} has no image bytes'
            raise LeRobotError(msg)
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None:
            msg = f'{where}: column {key} row {row}: not a decodable image'
            raise LeRobotError(msg)
        if img.ndim == 3 and img.dtype == np.uint8:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else
                               cv2.COLOR_BGR2RGB)
        try:
            frames.append(decode_image(raw_image(img), size=size, depth=depth))
        except ImageDecodeError as err:
            msg = f'{where}: column {key} row {row}: {err}'
            raise LeRobotError(msg) from err
    h, w = size
    shape = (0, h, w, 1 if depth else 3)
    return np.stack(frames) if frames else np.zeros(shape, np.uint16 if depth else np.uint8)


def _span(times_s: npt.NDArray[np.float64]) -> tuple[float, float]:
    if len(times_s) < 2:
        return 0.0, 0.0
    span = float(times_s[-1] - times_s[0])
    return ((len(times_s) - 1) / span if span > 0 else 0.0), float(np.max(np.diff(times_s)))


def _state_report(key: str, ts: npt.NDArray[np.float64], grid_s: npt.NDArray[np.float64],
                  valid: npt.NDArray[np.bool_], role: str) -> TopicReport:
    rate, gap = _span(ts)
    return TopicReport(
        topic=key, role=role, clock=CLOCK, messages=len(ts), rate_hz=rate, max_gap_s=gap,
        max_offset_s=float(np.max(np.abs(ts - grid_s))) if len(ts) else 0.0, held=0, dropped=0,
        invalid=int((~valid).sum()), out_of_order=int(np.sum(np.diff(ts) < 0)),
    )


def _camera_report(key: str, role: str, got: DecodedFrames) -> TopicReport:
    rate, gap = _span(np.sort(got.decoded_times))
    used = got.used[got.valid]
    held = int(np.sum(got.valid[1:] & got.valid[:-1] & (got.used[1:] == got.used[:-1])))
    return TopicReport(
        topic=key, role=f'camera:{role}', clock=CLOCK, messages=len(got.decoded_times),
        rate_hz=rate, max_gap_s=gap,
        max_offset_s=float(np.nanmax(got.offset_s[got.valid])) if got.valid.any() else 0.0,
        held=held, dropped=len(got.decoded_times) - len(np.unique(used)),
        invalid=int((~got.valid).sum()), out_of_order=0,
    )


def _missing_camera(key: str, role: str, n: int) -> TopicReport:
    return TopicReport(topic=key, role=f'camera:{role}', clock=CLOCK, messages=0, rate_hz=0.0,
                       max_gap_s=0.0, max_offset_s=0.0, held=0, dropped=0, invalid=n,
                       out_of_order=0)


def read_episode(
    src: LeRobotSource,
    ref: EpisodeRef,
    profile: LeRobotProfile,
    *,
    robot: str,
    warn: list[str],
) -> EpisodeData:
    """Episode ``ref`` of ``src`` as ptr's ``EpisodeData`` (images at the profile's size).

    A camera whose video file is missing leaves its frames invalid (zeros) and appends one line
    naming the episode and the file to ``warn``; anything else unreadable raises
    ``LeRobotError`` naming the episode and the file.
    """
    where = f'{src.root}: episode {ref.index} ({ref.data_file.relative_to(src.root)})'
    _check_episode_size(src, ref, profile, where)
    table, present, images = _episode_table(src, ref, profile, where)
    n = table.num_rows
    state = np.concatenate([_vectors(table, k, src.width(k), where) for k in profile.state],
                           axis=1)
    action = _vectors(table, profile.action, src.width(profile.action), where)
    period_ns = round(1e9 / src.fps)
    ts, timestamp = _times(table, present, src.fps, period_ns)
    grid_s = ts[0] + np.arange(n) / src.fps
    state_valid = _flag(table, present, 'ptr.state_valid') & np.isfinite(state).all(axis=1)
    action_valid = _flag(table, present, 'ptr.action_valid') & np.isfinite(action).all(axis=1)
    reports = [_state_report(k, ts, grid_s, state_valid, 'state') for k in profile.state]
    reports.append(_state_report(profile.action, ts, grid_s, action_valid, 'action'))
    frames, frame_valid = _camera_frames(src, ref, profile, table, present, images, ts,
                                         reports, warn, where)
    task, tasks = _episode_task(src, ref, profile, table, present)
    ptr = ref.ptr
    tags = _episode_tags(src, ref, table, present, tasks, where)
    digest = str(ptr.get('content_hash') or _content_hash(state, action, timestamp, task, ref))
    report: dict[str, Any] = _ptr_json(ptr, 'sync_report', {
        'grid': {'start_ns': int(timestamp[0]), 'period_ns': period_ns, 'steps': n},
        'clock': [CLOCK], 'episode_in_bag': [0, 1], 'ignored_state_messages': 0,
        'topics': reports, 'lerobot': {'dataset': str(src.root), 'episode_index': ref.index},
    }, where)
    part = _part(_ptr_json(ptr, 'part', [0, 1], where), where)
    stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', src.root.name).strip('._') or 'lerobot'
    return EpisodeData(
        id=str(ptr.get('episode_id') or f'{stem}_ep{ref.index:06d}-{digest[:10]}-{robot}-000'),
        robot=robot,
        timestamp=timestamp,
        state=state,
        action=action,
        state_valid=state_valid,
        action_valid=action_valid,
        images=frames,
        image_valid=frame_valid,
        task=task,
        source=str(ptr.get('source') or f'{src.root}#episode={ref.index}'),
        content_hash=digest,
        tags=tags,
        sync_report=report,
        part=part,
    )


def _check_episode_size(src: LeRobotSource, ref: EpisodeRef, profile: LeRobotProfile,
                        where: str) -> None:
    """Refuse, before reading, an episode whose decoded frames would pass ``MAX_EPISODE_BYTES``."""
    rows = src.rows.get(ref.index, 0)
    if rows * frame_bytes(src, profile) > MAX_EPISODE_BYTES:
        msg = (f'{where}: {rows} rows at image_size {list(profile.image_size)} are more than '
               f'the {MAX_EPISODE_BYTES // 2**30} GiB ptr holds per episode; lower image_size')
        raise LeRobotError(msg)


def _episode_table(
    src: LeRobotSource, ref: EpisodeRef, profile: LeRobotProfile, where: str,
) -> tuple[Any, set[str], list[LeRobotCamera]]:
    """The episode's rows (in frame order) with the columns the profile reads; the data file's
    column names; the cameras stored as image columns (the others are videos)."""
    keys = [*profile.state, profile.action]
    for key in keys:
        src.feature(key)
    images = [c for c in profile.cameras if src.feature(c.key).get('dtype') == 'image']
    present = set(_schema_names(ref.data_file))
    ptr_cols: list[str] = [c for c in ('ptr.timestamp_ns', 'ptr.state_valid', 'ptr.action_valid')
                if c in present]
    ptr_cols += [f'ptr.image_valid.{c.role}' for c in profile.cameras
                 if f'ptr.image_valid.{c.role}' in present]
    cols = [*keys, *(c for c in INDEX_COLUMNS if c in present), *ptr_cols,
            *(c.key for c in images)]
    table = _read_table(ref.data_file, list(dict.fromkeys(cols)),
                        filters=[('episode_index', '=', ref.index)] if src.version == 'v3.0'
                        else None)
    if 'frame_index' in present:
        import pyarrow.compute as pc

        table = table.take(pc.sort_indices(table, sort_keys=[('frame_index', 'ascending')]))
    if table.num_rows == 0:
        msg = f'{where}: no rows'
        raise LeRobotError(msg)
    _check_index_columns(table, where)
    return table, present, images


def _check_index_columns(table: Any, where: str) -> None:
    """LeRobot's index columns (and a ptr export's ``ptr.timestamp_ns``) hold finite numbers,
    no nulls: the frame times, task and global index are read from them."""
    import pyarrow as pa

    for name in (*INDEX_COLUMNS, 'ptr.timestamp_ns'):
        if name not in table.column_names:
            continue
        col = table.column(name)
        is_time = name == 'timestamp'
        ok = pa.types.is_integer(col.type) or (is_time and pa.types.is_floating(col.type))
        if not ok or col.null_count:
            msg = (f'{where}: column {name}: expected {"numbers" if is_time else "integers"} '
                   f'without nulls, got {col.type} ({col.null_count} null)')
            raise LeRobotError(msg)
        if is_time:
            values = col.to_numpy().astype(np.float64)
            if not (np.isfinite(values) & (np.abs(values) < 1e9)).all():
                msg = f'{where}: column timestamp: a time is not finite or beyond 1e9 s'
                raise LeRobotError(msg)


def _times(
    table: Any, present: set[str], fps: float, period_ns: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Each row's time in seconds (the ``timestamp`` column, else frame / fps) and the
    episode's grid in ns (a ptr export's own, else on the fps grid from the first row)."""
    n = table.num_rows
    ts = (table.column('timestamp').to_numpy().astype(np.float64) if 'timestamp' in present
          else np.arange(n) / fps)
    if 'ptr.timestamp_ns' in present:
        timestamp = table.column('ptr.timestamp_ns').to_numpy().astype(np.int64)
    else:
        timestamp = round(float(ts[0]) * 1e9) + np.arange(n, dtype=np.int64) * period_ns
    return ts, timestamp


def _flag(table: Any, present: set[str], col: str) -> npt.NDArray[np.bool_]:
    """A ptr export's per-frame validity column; all valid when the file has none."""
    if col in present:
        return np.asarray(table.column(col).to_numpy(zero_copy_only=False), bool)
    return np.ones(table.num_rows, bool)


def _camera_frames(
    src: LeRobotSource, ref: EpisodeRef, profile: LeRobotProfile, table: Any,
    present: set[str], images: list[LeRobotCamera], ts: npt.NDArray[np.float64],
    reports: list[TopicReport], warn: list[str], where: str,
) -> tuple[dict[str, npt.NDArray[Any]], dict[str, npt.NDArray[np.bool_]]]:
    """Each camera's frames at the profile's size and where they are valid, from its image
    column or its video (a missing video: zeros, invalid, one line in ``warn``); appends one
    report per camera."""
    n = table.num_rows
    grid_s = ts[0] + np.arange(n) / src.fps
    frames: dict[str, npt.NDArray[Any]] = {}
    frame_valid: dict[str, npt.NDArray[np.bool_]] = {}
    h, w = profile.image_size
    for cam in profile.cameras:
        if cam in images:
            frames[cam.role] = _image_column(table, cam.key, profile.image_size, cam.depth, where)
            frame_valid[cam.role] = np.ones(n, bool)
            reports.append(_state_report(cam.key, ts, grid_s, frame_valid[cam.role],
                                         f'camera:{cam.role}'))
        else:
            video = ref.videos.get(cam.key)
            if video is None or not video.path.is_file():
                shown = (video.path.relative_to(src.root) if video is not None
                         else f'(no video entry for {cam.key})')
                warn.append(f'{src.root}: episode {ref.index}: video file {shown} is missing; '
                            f'camera {cam.role} left invalid')
                frames[cam.role] = np.zeros((n, h, w, 1 if cam.depth else 3),
                                            np.uint16 if cam.depth else np.uint8)
                frame_valid[cam.role] = np.zeros(n, bool)
                reports.append(_missing_camera(cam.key, cam.role, n))
                continue
            got = decode_frames(video.path, video.from_s + ts, size=profile.image_size,
                                depth=cam.depth, tolerance_s=0.5 / src.fps)
            frames[cam.role], frame_valid[cam.role] = got.frames, got.valid
            reports.append(_camera_report(cam.key, cam.role, got))
        frame_valid[cam.role] = (frame_valid[cam.role]
                                 & _flag(table, present, f'ptr.image_valid.{cam.role}'))
    return frames, frame_valid


def _episode_task(
    src: LeRobotSource, ref: EpisodeRef, profile: LeRobotProfile, table: Any, present: set[str],
) -> tuple[str, list[str]]:
    """The episode's task (the profile's, else its first) and every task its frames name."""
    n = table.num_rows
    task_index = (table.column('task_index').to_numpy() if 'task_index' in present
                  else np.zeros(n, np.int64))
    tasks = [src.tasks.get(int(i), '') for i in dict.fromkeys(task_index.tolist())]
    tasks = [t for t in tasks if t] or list(ref.tasks)
    task = profile.task if profile.task is not None else (tasks[0] if tasks else '')
    return task, tasks


def _episode_tags(
    src: LeRobotSource, ref: EpisodeRef, table: Any, present: set[str], tasks: list[str],
    where: str,
) -> dict[str, Any]:
    """A ptr export's tags as they were; for any other LeRobot episode, where it came from."""
    if ref.ptr.get('episode_id'):  # a ptr export: the episode as it was (same id, hash, tags)
        tags: dict[str, Any] = _ptr_json(ref.ptr, 'tags', {}, where)
        return tags
    first_index = int(table.column('index')[0].as_py()) if 'index' in present else 0
    tags = {'lerobot.dataset': src.root.name, 'lerobot.codebase_version': src.version,
            'lerobot.episode_index': ref.index, 'lerobot.index_from': first_index}
    if len(tasks) > 1:
        tags['lerobot.tasks'] = tasks
    return tags


def _ptr_json(ptr: Mapping[str, Any], key: str, default: Any, where: str) -> Any:
    """A ``ptr/<key>`` JSON column of the episodes table, parsed."""
    text = ptr.get(key)
    if not text:
        return default
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        msg = f'{where}: column ptr/{key} of meta/episodes is not valid JSON: {err}'
        raise LeRobotError(msg) from err
    if type(value) is not type(default):
        msg = (f'{where}: column ptr/{key} of meta/episodes: expected a JSON '
               f'{"object" if isinstance(default, dict) else "array"}, got {shown(value)}')
        raise LeRobotError(msg)
    return value


def _part(value: list[Any], where: str) -> tuple[int, int]:
    """A ptr export's ``ptr/part``: ``[i, n]``, the episode's piece ``i`` of ``n``."""
    if (len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                   for v in value) or not 0 <= value[0] < value[1]):
        msg = f'{where}: column ptr/part of meta/episodes: expected [i, n], 0 <= i < n'
        raise LeRobotError(msg)
    return value[0], value[1]


def _schema_names(file: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(file).names)
    except (OSError, pa.ArrowException) as err:
        msg = f'{file}: cannot read parquet: {" ".join(str(err).split())}'
        raise LeRobotError(msg) from err


def _content_hash(state: npt.NDArray[Any], action: npt.NDArray[Any],
                  timestamp: npt.NDArray[Any], task: str, ref: EpisodeRef) -> str:
    """sha256 over the episode's arrays, task and the identity of its video frames."""
    h = hashlib.sha256()
    for arr in (state, action, timestamp):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(task.encode())
    for key, video in sorted(ref.videos.items()):
        size = video.path.stat().st_size if video.path.is_file() else -1
        h.update(f'{key}:{video.path.name}:{size}:{video.from_s}:{video.to_s}'.encode())
    return h.hexdigest()
