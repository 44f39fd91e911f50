"""Reading a LeRobot v2.1 / v3.0 folder: its episodes as the data holds them, one at a time.

``LeRobotSource.open(root)`` lists the episodes from the metadata *and* the data files and trusts
the data: ``info.json`` totals that disagree are a warning (``LeRobotSource.warnings``), an
episode whose data or video file is missing gives one line naming the episode and the file.
``read_episode`` turns one episode into an ``EpisodeData`` at the profile's image size, with a
sync report in ptr's shape (data timestamps against the fps grid, video frame times against the
data timestamps -- what LeRobot's own loader checks with its ``tolerance_s``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import ImageDecodeError
from bag_tools.lerobot.format import (
    INDEX_COLUMNS,
    LeRobotError,
    feature_names,
    feature_width,
    read_info,
)
from bag_tools.lerobot.profile import LeRobotCamera, LeRobotProfile
from bag_tools.lerobot.video import DecodedFrames, decode_frames, raw_image
from bag_tools.observation import decode_image
from bag_tools.sync import TopicReport

__all__ = ['EpisodeRef', 'LeRobotSource', 'VideoRef', 'read_episode']

log = logging.getLogger(__name__)

CLOCK = 'timestamp'  # the clock name in sync reports of imported episodes
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


def _read_jsonl(file: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(file.read_text().splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError as err:
                msg = f'{file}: line {n}: not valid JSON: {err}'
                raise LeRobotError(msg) from err
    return out


def _read_table(file: Path, columns: Sequence[str] | None = None,
                filters: Any = None) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(file, columns=list(columns) if columns else None, filters=filters)
    except (OSError, pa.ArrowException) as err:
        msg = f'{file}: cannot read parquet: {" ".join(str(err).split())}'
        raise LeRobotError(msg) from err


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
        ptr_meta = root / PTR_META
        try:
            self.ptr_meta: dict[str, Any] = (
                json.loads(ptr_meta.read_text()) if ptr_meta.is_file() else {})
        except ValueError as err:
            msg = f'{ptr_meta}: not valid JSON: {err}'
            raise LeRobotError(msg) from err
        if self.version == 'v3.0':
            self._open_v3()
        else:
            self._open_v21()
        self._check_totals()

    @classmethod
    def open(cls, root: str | Path) -> LeRobotSource:
        return cls(Path(root))

    # -- listing -------------------------------------------------------------------------
    def _video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get('dtype') == 'video']

    def _open_v3(self) -> None:
        tasks_file = self.root / 'meta' / 'tasks.parquet'
        if tasks_file.is_file():
            table = _read_table(tasks_file).to_pylist()
            for row in table:
                text = row.get('task', row.get('__index_level_0__'))
                self.tasks[int(row['task_index'])] = str(text)
        files = sorted((self.root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
        if not files:
            msg = f'{self.root}: no meta/episodes/chunk-*/file-*.parquet (a v3.0 dataset has them)'
            raise LeRobotError(msg)
        video_keys = self._video_keys()
        for file in files:
            for row in _read_table(file).to_pylist():
                idx = int(row['episode_index'])
                data = self.root / self.info['data_path'].format(
                    chunk_index=int(row.get('data/chunk_index', 0)),
                    file_index=int(row.get('data/file_index', 0)))
                videos = {}
                for key in video_keys:
                    if f'videos/{key}/chunk_index' not in row or not self.info.get('video_path'):
                        continue  # no file named for it: the camera is reported missing
                    path = self.root / self.info['video_path'].format(
                        video_key=key, chunk_index=int(row[f'videos/{key}/chunk_index']),
                        file_index=int(row[f'videos/{key}/file_index']))
                    to_s = row.get(f'videos/{key}/to_timestamp')
                    videos[key] = VideoRef(path, float(row.get(f'videos/{key}/from_timestamp')
                                                       or 0.0),
                                           None if to_s is None else float(to_s))
                ptr = {k.removeprefix('ptr/'): v for k, v in row.items() if k.startswith('ptr/')}
                self.episodes[idx] = EpisodeRef(idx, data, _opt_int(row.get('length')),
                                                tuple(row.get('tasks') or ()), videos, ptr)
        self._trust_data_v3()

    def _trust_data_v3(self) -> None:
        """Row counts per episode from the data files themselves (the metadata may be stale)."""
        counts: dict[int, int] = {}
        for file in sorted({ref.data_file for ref in self.episodes.values()}):
            if not file.is_file():
                continue
            col = _read_table(file, ['episode_index']).column('episode_index').to_numpy()
            uniq, n = np.unique(col, return_counts=True)
            for i, c in zip(uniq.tolist(), n.tolist()):
                counts[int(i)] = counts.get(int(i), 0) + int(c)
        self.rows = counts
        for idx, ref in self.episodes.items():
            if not ref.data_file.is_file():
                self.missing[idx] = (f'{self.root}: episode {idx}: data file '
                                     f'{ref.data_file.relative_to(self.root)} is missing')
            elif idx not in counts:
                self.missing[idx] = (f'{self.root}: episode {idx}: no rows in '
                                     f'{ref.data_file.relative_to(self.root)}')
            elif ref.length is not None and ref.length != counts[idx]:
                self.warnings.append(
                    f'{self.root}: episode {idx}: meta/episodes says length {ref.length}, '
                    f'the data holds {counts[idx]} rows; using the data')

    def _open_v21(self) -> None:
        meta = self.root / 'meta'
        if (meta / 'tasks.jsonl').is_file():
            for row in _read_jsonl(meta / 'tasks.jsonl'):
                self.tasks[int(row['task_index'])] = str(row['task'])
        listed: dict[int, dict[str, Any]] = {}
        if (meta / 'episodes.jsonl').is_file():
            listed = {int(r['episode_index']): r for r in _read_jsonl(meta / 'episodes.jsonl')}
        chunks = int(self.info.get('chunks_size') or 1000)
        data_dir = self.root / 'data'
        found = {int(m.group(1)): p for p in data_dir.glob('chunk-*/episode_*.parquet')
                 if (m := re.fullmatch(r'episode_(\d+)\.parquet', p.name))}
        import pyarrow.parquet as pq

        self.rows = {}
        for idx in sorted(set(listed) | set(found)):
            row = listed.get(idx, {})
            data = self.root / self.info['data_path'].format(episode_chunk=idx // chunks,
                                                             episode_index=idx)
            videos = {
                key: VideoRef(self.root / self.info['video_path'].format(
                    episode_chunk=idx // chunks, video_key=key, episode_index=idx), 0.0, None)
                for key in self._video_keys()
            } if self.info.get('video_path') else {}
            self.episodes[idx] = EpisodeRef(idx, data, _opt_int(row.get('length')),
                                            tuple(row.get('tasks') or ()), videos)
            if not data.is_file():
                self.missing[idx] = (f'{self.root}: episode {idx}: data file '
                                     f'{data.relative_to(self.root)} is missing')
                continue
            self.rows[idx] = pq.ParquetFile(data).metadata.num_rows
            length = row.get('length')
            if length is not None and int(length) != self.rows[idx]:
                self.warnings.append(
                    f'{self.root}: episode {idx}: meta/episodes.jsonl says length {length}, '
                    f'the data holds {self.rows[idx]} rows; using the data')

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

    def names(self, keys: Sequence[str]) -> list[str]:
        """The value names of ``keys`` concatenated; a clash is prefixed with its key."""
        out: list[str] = []
        for key in keys:
            for name in feature_names(key, self.feature(key)):
                out.append(name if name not in out else f'{key}.{name}')
        return out

    def state_limits(self, keys: Sequence[str]) -> tuple[list[float], list[float]] | None:
        """Dataset-wide min/max of ``keys`` from ``meta/stats.json`` (v3) or the per-episode
        stats (v2.1); None when the files do not have them."""
        lower: list[float] = []
        upper: list[float] = []
        stats_file = self.root / 'meta' / 'stats.json'
        per_ep = self.root / 'meta' / 'episodes_stats.jsonl'
        try:
            if stats_file.is_file():
                stats = json.loads(stats_file.read_text())
                for key in keys:
                    lower += [float(v) for v in np.ravel(stats[key]['min'])]
                    upper += [float(v) for v in np.ravel(stats[key]['max'])]
            elif per_ep.is_file():
                rows = [r['stats'] for r in _read_jsonl(per_ep)]
                for key in keys:
                    lower += np.min([np.ravel(r[key]['min']) for r in rows], axis=0).tolist()
                    upper += np.max([np.ravel(r[key]['max']) for r in rows], axis=0).tolist()
            else:
                return None
        except (KeyError, TypeError, ValueError):
            return None
        if len(lower) != sum(feature_width(self.feature(k)) for k in keys) or not all(
                np.isfinite(lower + upper)):
            return None
        return lower, upper


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


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
    table, present, images = _episode_table(src, ref, profile, where)
    n = table.num_rows
    state = np.concatenate([_vectors(table, k, feature_width(src.feature(k)), where)
                            for k in profile.state], axis=1)
    action = _vectors(table, profile.action, feature_width(src.feature(profile.action)), where)
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
    part = tuple(_ptr_json(ptr, 'part', [0, 1], where))
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
        part=(int(part[0]), int(part[1])),
    )


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
    return table, present, images


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
        return json.loads(text)
    except (TypeError, ValueError) as err:
        msg = f'{where}: column ptr/{key} of meta/episodes is not valid JSON: {err}'
        raise LeRobotError(msg) from err


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
