"""``ptr export DATASET --format lerobot``: a ptr dataset as a LeRobot v3.0 dataset.

Written into ``.<out>.tmp-<pid>`` beside ``out`` (marked as ptr's temp) and renamed into place
at the end, so a crash never leaves half a dataset; the next export to ``out`` removes the temps
of killed exports (their pid runs no more). A failed write (disk full, read-only) is one line
naming ``out``, its temp removed. Layout (LeRobot's, see ``bag_tools.lerobot.format``)::

    meta/info.json                   codebase_version v3.0, fps = grid rate, robot_type, features
    meta/stats.json                  min/max/mean/std/count (+ q01/q99) per feature
    meta/tasks.parquet               task_index, task text (the frame's index column)
    meta/episodes/chunk-000/file-000.parquet   one row per episode (+ ptr/* columns)
    meta/ptr.json                    the robot's record ({"profile": ...}) for re-import
    data/chunk-000/file-000.parquet  frames of many episodes (+ ptr.* columns)
    videos/observation.images.<role>/chunk-000/file-000.mp4   color cameras, episodes back to back

ptr's own columns (documented in docs/lerobot.md): per frame ``ptr.timestamp_ns`` (the grid
time, ns), ``ptr.state_valid``, ``ptr.action_valid``, ``ptr.image_valid.<role>`` and, with a
trust file, ``ptr.trust``; per episode ``ptr/episode_id``, ``ptr/content_hash``, ``ptr/source``,
``ptr/tags``, ``ptr/part``, ``ptr/sync_report`` (JSON text), ``ptr/worst_sync_offset_s``,
``ptr/held``, ``ptr/dropped``, ``ptr/invalid`` and ``ptr/trust``, ``ptr/trust_score``. Depth
cameras are ``image`` features (16-bit PNG in the data file, millimetres): lossless.

A camera step ptr holds as invalid is a zero (black) image, and a LeRobot consumer reads every
frame without knowing ``ptr.image_valid``: a camera invalid at more than ``WARN_INVALID_SHARE``
of an episode's steps is a warning naming the episode, the camera and the share, and an episode
with a camera over ``ExportConfig.max_invalid`` (default ``MAX_INVALID_SHARE``) is left out of
the export, one warning line each (``bag_tools.validity`` says the same of ingest's streams).
"""

from __future__ import annotations

import errno
import glob
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bag_tools.dataset import (
    TEMP_MARKER,
    Dataset,
    Episode,
    RobotEntry,
    dead_temp,
    make_temp,
    temp_owner,
)
from bag_tools.lerobot.format import (
    CODEBASE_VERSION,
    DEFAULT_CHUNKS_SIZE,
    DEFAULT_DATA_FILE_MB,
    DEFAULT_VIDEO_FILE_MB,
    LeRobotError,
)
from bag_tools.lerobot.video import VideoEncoder
from bag_tools.robots import robot_record
from bag_tools.validity import WARN_INVALID_SHARE

__all__ = ['MAX_INVALID_SHARE', 'ExportConfig', 'export_lerobot']

log = logging.getLogger(__name__)

DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
PTR_SCHEMA = 'ptr.lerobot/1'
#: An episode with a camera invalid (black) at more than this share of its steps is left out of
#: an export: half its frames would teach a LeRobot policy from black images. A healthy episode
#: loses a few frames at most; a video far shorter than its bag is invalid at 50-100 %.
MAX_INVALID_SHARE = 0.5


@dataclass(frozen=True)
class ExportConfig:
    """How to write: codec and LeRobot's file-size limits (defaults: LeRobot's); the share of
    invalid camera steps past which an episode is left out (``max_invalid``, 1.0 keeps all)."""

    vcodec: str = 'libx264'
    crf: int = 18
    gop: int = 2
    chunks_size: int = DEFAULT_CHUNKS_SIZE
    data_files_size_in_mb: float = DEFAULT_DATA_FILE_MB
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILE_MB
    max_invalid: float = MAX_INVALID_SHARE

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_invalid <= 1.0:
            msg = f'export: max_invalid must be a share between 0 and 1, got {self.max_invalid!r}'
            raise LeRobotError(msg)
        for name in ('chunks_size', 'data_files_size_in_mb', 'video_files_size_in_mb'):
            if not getattr(self, name) > 0:
                msg = f'export: {name} must be > 0, got {getattr(self, name)!r}'
                raise LeRobotError(msg)
        if not 0 <= self.crf <= 63 or self.gop < 1:
            msg = f'export: crf must be in [0, 63] and gop >= 1, got {self.crf}, {self.gop}'
            raise LeRobotError(msg)


class _FileCursor:
    """LeRobot's file numbering: ``file_index`` counts up to ``chunks_size``, then the next
    chunk starts."""

    def __init__(self, chunks_size: int) -> None:
        self.chunks_size = chunks_size
        self.chunk = 0
        self.file = 0

    def advance(self) -> None:
        self.file += 1
        if self.file >= self.chunks_size:
            self.chunk, self.file = self.chunk + 1, 0


def _key(role: str) -> str:
    return f'observation.images.{role}'


def _features(entry: RobotEntry, fps: float, codec: str, pix_fmt: dict[str, str],
              trust: bool) -> dict[str, Any]:
    scalar: dict[str, Any] = {'shape': [1], 'names': None}
    h, w = entry['image_size']
    features: dict[str, Any] = {
        'observation.state': {'dtype': 'float32', 'shape': [len(entry['state_names'])],
                              'names': list(entry['state_names'])},
        'action': {'dtype': 'float32', 'shape': [len(entry['action_names'])],
                   'names': list(entry['action_names'])},
    }
    for role in entry['camera_roles']:
        if entry['image_dtypes'][role] == 'uint16':
            features[_key(role)] = {
                'dtype': 'image', 'shape': [h, w, 1], 'names': ['height', 'width', 'channel'],
                'info': {'is_depth_map': True, 'unit': 'mm', 'pixel_dtype': 'uint16',
                         'encoding': 'png'}}
        else:
            features[_key(role)] = {
                'dtype': 'video', 'shape': [h, w, 3], 'names': ['height', 'width', 'channel'],
                'info': {'video.fps': float(fps), 'video.height': h, 'video.width': w,
                         'video.codec': codec, 'video.pix_fmt': pix_fmt.get(role, 'yuv420p'),
                         'video.is_depth_map': False, 'video.channels': 3,
                         'has_audio': False}}
    features['timestamp'] = {'dtype': 'float32', **scalar}
    for name in ('frame_index', 'episode_index', 'index', 'task_index'):
        features[name] = {'dtype': 'int64', **scalar}
    features['ptr.timestamp_ns'] = {'dtype': 'int64', **scalar}
    features['ptr.state_valid'] = {'dtype': 'bool', **scalar}
    features['ptr.action_valid'] = {'dtype': 'bool', **scalar}
    for role in entry['camera_roles']:
        features[f'ptr.image_valid.{role}'] = {'dtype': 'bool', **scalar}
    if trust:
        features['ptr.trust'] = {'dtype': 'float32', **scalar}
    for feat in features.values():
        feat['fps'] = float(fps)
    return features


def _stats(values: npt.NDArray[Any]) -> dict[str, Any]:
    """LeRobot's per-feature statistics over rows of ``[N, ...]`` (reduced over axis 0)."""
    v = np.asarray(values, np.float64)
    if len(v) == 0:
        return {}
    return {
        'min': v.min(axis=0).tolist(), 'max': v.max(axis=0).tolist(),
        'mean': v.mean(axis=0).tolist(), 'std': v.std(axis=0).tolist(),
        'count': [len(v)],
        'q01': np.quantile(v, 0.01, axis=0).tolist(), 'q99': np.quantile(v, 0.99, axis=0).tolist(),
    }


def _image_stats(frames: npt.NDArray[Any]) -> dict[str, Any]:
    """Per-channel statistics in [0, 1], shaped ``[C, 1, 1]`` like LeRobot's."""
    step = max(1, len(frames) // 100)  # LeRobot samples ~100 frames per episode too
    x = np.asarray(frames[::step], np.float64) / (65535.0 if frames.dtype == np.uint16 else 255.0)
    c = x.shape[-1]
    flat = x.reshape(-1, c)

    def shaped(a: npt.NDArray[Any]) -> list[Any]:
        out: list[Any] = a.reshape(c, 1, 1).tolist()
        return out

    return {'min': shaped(flat.min(0)), 'max': shaped(flat.max(0)),
            'mean': shaped(flat.mean(0)), 'std': shaped(flat.std(0)),
            'count': [len(x)]}


def _merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Dataset statistics from per-episode ones (count-weighted mean and variance)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    n = np.array([p['count'][0] for p in parts], np.float64)
    mean = [np.asarray(p['mean'], np.float64) for p in parts]
    var = [np.asarray(p['std'], np.float64) ** 2 for p in parts]
    total = n.sum()
    m = sum(ni * mi for ni, mi in zip(n, mean)) / total
    v = sum(ni * (vi + (mi - m) ** 2) for ni, vi, mi in zip(n, var, mean)) / total
    out = {
        'min': np.min([np.asarray(p['min']) for p in parts], axis=0).tolist(),
        'max': np.max([np.asarray(p['max']) for p in parts], axis=0).tolist(),
        'mean': np.asarray(m).tolist(), 'std': np.sqrt(v).tolist(), 'count': [int(total)],
    }
    for q, pick in (('q01', np.min), ('q99', np.max)):  # bounds, not exact quantiles
        if all(q in p for p in parts):
            out[q] = pick([np.asarray(p[q]) for p in parts], axis=0).tolist()
    return out


def _png16(depth: npt.NDArray[np.uint16]) -> bytes:
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(depth[..., 0]))
    if not ok:
        msg = 'cannot PNG-encode a depth frame'
        raise LeRobotError(msg)
    return bytes(buf.tobytes())


def _worst(report: Mapping[str, Any]) -> dict[str, Any]:
    topics = report.get('topics', [])
    return {
        'worst_sync_offset_s': max((float(t['max_offset_s']) for t in topics), default=0.0),
        'held': sum(int(t['held']) for t in topics),
        'dropped': sum(int(t['dropped']) for t in topics),
        'invalid': sum(int(t['invalid']) for t in topics),
    }


def _tasks_table(tasks: list[str]) -> Any:
    """``meta/tasks.parquet`` as pandas writes it (task text is the frame's index)."""
    import pyarrow as pa

    table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                      '__index_level_0__': pa.array(tasks, pa.string())})
    pandas_meta = {
        'index_columns': ['__index_level_0__'],
        'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                            'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
        'columns': [
            {'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
             'numpy_type': 'int64', 'metadata': None},
            {'name': None, 'field_name': '__index_level_0__', 'pandas_type': 'unicode',
             'numpy_type': 'object', 'metadata': None}],
        'attributes': {}, 'creator': {'library': 'pyarrow', 'version': pa.__version__},
        'pandas_version': '2.2.0',
    }
    return table.replace_schema_metadata({'pandas': json.dumps(pandas_meta)})


class _Writer:
    """Appends episodes to the current data parquet and mp4s, rolling files at the limits."""

    def __init__(self, tmp: Path, entry: RobotEntry, fps: float, cfg: ExportConfig,
                 trust: Mapping[str, tuple[float, npt.NDArray[np.float64]]] | None,
                 tasks: dict[str, int]) -> None:
        self.tmp, self.entry, self.fps, self.cfg = tmp, entry, fps, cfg
        self.trust, self.tasks = trust, tasks
        self.color = [r for r in entry['camera_roles'] if entry['image_dtypes'][r] != 'uint16']
        self.depth = [r for r in entry['camera_roles'] if entry['image_dtypes'][r] == 'uint16']
        self.data_cursor = _FileCursor(cfg.chunks_size)
        self.pending: list[Any] = []  # pyarrow tables of the current data file
        self.pending_bytes = 0
        self.video: dict[str, VideoEncoder] = {}
        self.video_cursor = {r: _FileCursor(cfg.chunks_size) for r in self.color}
        self.codec = cfg.vcodec
        self.pix_fmt: dict[str, str] = {}
        self.index = 0
        self.rows: list[dict[str, Any]] = []
        self.frame_stats: dict[str, list[dict[str, Any]]] = {}

    # -- data files --------------------------------------------------------------------
    def _flush_data(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.pending:
            return
        file = self.tmp / DATA_PATH.format(chunk_index=self.data_cursor.chunk,
                                           file_index=self.data_cursor.file)
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self.pending), file)
        self.pending, self.pending_bytes = [], 0
        self.data_cursor.advance()

    def _frames_table(self, ep: Episode, index: int) -> Any:
        import pyarrow as pa

        n, ds, da = ep.length, ep.state.shape[1], ep.action.shape[1]
        cols: dict[str, Any] = {
            'observation.state': pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray(ep.state, np.float32).reshape(-1)), ds),
            'action': pa.FixedSizeListArray.from_arrays(
                pa.array(np.asarray(ep.action, np.float32).reshape(-1)), da),
        }
        for role in self.depth:
            cols[_key(role)] = pa.array(
                [{'bytes': _png16(f), 'path': None} for f in ep.images[role]],
                pa.struct([('bytes', pa.binary()), ('path', pa.string())]))
        cols['timestamp'] = pa.array((np.arange(n) / self.fps).astype(np.float32))
        cols['frame_index'] = pa.array(np.arange(n, dtype=np.int64))
        cols['episode_index'] = pa.array(np.full(n, index, np.int64))
        cols['index'] = pa.array(self.index + np.arange(n, dtype=np.int64))
        cols['task_index'] = pa.array(np.full(n, self.tasks[ep.task], np.int64))
        cols['ptr.timestamp_ns'] = pa.array(np.asarray(ep.timestamp, np.int64))
        cols['ptr.state_valid'] = pa.array(np.asarray(ep.state_valid, bool))
        cols['ptr.action_valid'] = pa.array(np.asarray(ep.action_valid, bool))
        for role in self.entry['camera_roles']:
            cols[f'ptr.image_valid.{role}'] = pa.array(np.asarray(ep.image_valid[role], bool))
        if self.trust is not None:
            cols['ptr.trust'] = pa.array(self.trust[ep.id][1].astype(np.float32))
        return pa.table(cols)

    # -- videos ------------------------------------------------------------------------
    def _encoder(self, role: str) -> VideoEncoder:
        enc = self.video.get(role)
        limit = self.cfg.video_files_size_in_mb * 1e6
        if enc is not None and enc.path.stat().st_size >= limit:
            enc.close()
            self.video_cursor[role].advance()
            enc = None
        if enc is None:
            cur = self.video_cursor[role]
            path = self.tmp / VIDEO_PATH.format(video_key=_key(role), chunk_index=cur.chunk,
                                                file_index=cur.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            h, w = self.entry['image_size']
            enc = VideoEncoder(path, fps=self.fps, width=w, height=h, codec=self.cfg.vcodec,
                               crf=self.cfg.crf, gop=self.cfg.gop)
            self.codec, self.pix_fmt[role] = enc.codec_name, enc.pix_fmt
            self.video[role] = enc
        return enc

    # -- one episode -------------------------------------------------------------------
    def add(self, ep: Episode, index: int) -> None:
        table = self._frames_table(ep, index)
        limit = self.cfg.data_files_size_in_mb * 1e6
        if self.pending and self.pending_bytes + table.nbytes > limit:
            self._flush_data()
        row: dict[str, Any] = {
            'episode_index': index, 'tasks': [ep.task], 'length': ep.length,
            'data/chunk_index': self.data_cursor.chunk, 'data/file_index': self.data_cursor.file,
            'dataset_from_index': self.index, 'dataset_to_index': self.index + ep.length,
        }
        self.pending.append(table)
        self.pending_bytes += table.nbytes
        for role in self.color:
            enc = self._encoder(role)
            start = enc.frames
            for frame in ep.images[role]:
                enc.add(np.asarray(frame))
            key = _key(role)
            row[f'videos/{key}/chunk_index'] = self.video_cursor[role].chunk
            row[f'videos/{key}/file_index'] = self.video_cursor[role].file
            row[f'videos/{key}/from_timestamp'] = start / self.fps
            row[f'videos/{key}/to_timestamp'] = enc.frames / self.fps
        stats = {
            'observation.state': _stats(ep.state), 'action': _stats(ep.action),
            'timestamp': _stats(np.arange(ep.length)[:, None] / self.fps),
            'frame_index': _stats(np.arange(ep.length)[:, None]),
            'episode_index': _stats(np.full((ep.length, 1), index)),
            'index': _stats(self.index + np.arange(ep.length)[:, None]),
            'task_index': _stats(np.full((ep.length, 1), self.tasks[ep.task])),
        }
        for role in self.entry['camera_roles']:
            stats[_key(role)] = _image_stats(np.asarray(ep.images[role]))
        for feature, s in stats.items():
            self.frame_stats.setdefault(feature, []).append(s)
            for name, value in s.items():  # shaped as in stats.json ([C, 1, 1] for images)
                row[f'stats/{feature}/{name}'] = value
        row['meta/episodes/chunk_index'] = 0
        row['meta/episodes/file_index'] = 0
        row.update({
            'ptr/episode_id': ep.id, 'ptr/content_hash': ep.meta.get('content_hash', ''),
            'ptr/source': ep.meta.get('source', ''), 'ptr/robot': ep.robot,
            'ptr/tags': json.dumps(ep.tags, sort_keys=True), 'ptr/part': json.dumps(list(ep.part)),
            'ptr/sync_report': json.dumps(ep.sync_report),
            **{f'ptr/{k}': v for k, v in _worst(ep.sync_report).items()},
        })
        if self.trust is not None:
            row['ptr/trust'] = float(self.trust[ep.id][0])
            row['ptr/trust_frames_mean'] = float(np.mean(self.trust[ep.id][1]))
        self.rows.append(row)
        self.index += ep.length

    def close(self) -> None:
        self._flush_data()
        for enc in self.video.values():
            enc.close()


def export_lerobot(
    dataset: str | Path,
    out: str | Path,
    *,
    robot: str | None = None,
    trust: str | Path | None = None,
    config: ExportConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the episodes of ``robot`` (default: the dataset's only robot) as LeRobot v3.0.

    ``trust`` is a trust file (``ptr score``); a stale one (the dataset changed since scoring)
    is refused. ``out`` must not exist (nor be a symlink). Returns ``out``. A failed write
    (disk full, read-only) is one ``LeRobotError`` naming ``out``, with nothing left behind.
    """
    import pyarrow  # noqa: F401  (missing: fail before the dataset is read)

    cfg = config or ExportConfig()
    ds = Dataset.open(dataset)
    out = Path(out)
    _check_out(out)
    robot = _pick_robot(ds, robot)
    entry = ds.manifest['robots'][robot]
    episodes = [ds.episode(e['id']) for e in ds.manifest['episodes'] if e['robot'] == robot]
    if not episodes:
        msg = f'{ds.root}: robot {robot!r} has no episodes'
        raise LeRobotError(msg)
    kept = _valid_enough(ds, robot, episodes, cfg.max_invalid)
    for ep in episodes:
        if progress is not None and ep not in kept:  # left out: done with it
            progress(ep.id)
    episodes = kept
    weights, trust_meta = _trust(ds, trust)
    fps = float(ds.manifest['rate_hz'])
    task_list = sorted({ep.task for ep in episodes})
    tmp = _make_tmp(out)
    try:
        writer = _Writer(tmp, entry, fps, cfg, weights, {t: i for i, t in enumerate(task_list)})
        try:
            for i, ep in enumerate(episodes):
                writer.add(ep, i)
                if progress is not None:
                    progress(ep.id)
        finally:
            writer.close()
        total = sum(ep.length for ep in episodes)
        info = _info(robot, len(episodes), total, len(task_list), cfg, fps, bool(writer.color),
                     _features(entry, fps, writer.codec, writer.pix_fmt, weights is not None))
        ptr_meta = {'schema': PTR_SCHEMA, 'source_dataset': str(Path(ds.root).resolve()),
                    'robot': robot_record(entry), 'rate_hz': fps, 'trust': trust_meta}
        _write_meta(tmp, writer, task_list, info, ptr_meta)
        _finish(tmp, out)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):  # disk full, read-only, another export's folder in place
            raise _failure(out, err) from err
        raise
    log.info('%s: %d episode(s), %d frames as LeRobot %s', out, len(episodes), total,
             CODEBASE_VERSION)
    return out


def _valid_enough(ds: Dataset, robot: str, episodes: list[Episode],
                  max_invalid: float) -> list[Episode]:
    """The episodes whose every camera is valid at all but ``max_invalid`` of its steps; a
    camera invalid at more than ``WARN_INVALID_SHARE`` is one warning (the episode, the camera,
    the share), an episode left out is one warning; none left is one ``LeRobotError``."""
    kept = []
    for ep in episodes:
        over = []
        for role, valid in sorted(ep.image_valid.items()):
            share = 1.0 - float(np.mean(valid)) if len(valid) else 0.0
            if share > max_invalid:
                over.append(f'camera {role} invalid (zero images) at {share:.0%}')
            elif share > WARN_INVALID_SHARE:
                log.warning('%s: episode %s: camera %s invalid (zero images) at %.0f%% of %d '
                            'steps; exported, ptr.image_valid.%s marks them', ds.root, ep.id,
                            role, 100 * share, len(valid), role)
        if over:
            log.warning('%s: episode %s: %s of %d steps, over max_invalid %g: left out of the '
                        'export', ds.root, ep.id, ', '.join(over), ep.length, max_invalid)
        else:
            kept.append(ep)
    if not kept:
        msg = (f'{ds.root}: every episode of robot {robot!r} has a camera invalid at more than '
               f'max_invalid {max_invalid:g} of its steps; nothing to export (raise '
               '--max-invalid to export them with black frames)')
        raise LeRobotError(msg)
    return kept


def _check_out(out: Path) -> None:
    """``out`` must be new: not a folder, a file, nor a symlink (dangling or not)."""
    if out.is_symlink():
        msg = (f'{out}: is a symlink (to {os.readlink(out)}); export writes a new folder '
               '(remove it or choose another --out)')
        raise LeRobotError(msg)
    if out.exists():
        msg = f'{out}: exists; export writes a new folder (remove it or choose another --out)'
        raise LeRobotError(msg)


def _make_tmp(out: Path) -> Path:
    """``.<out>.tmp-<pid>`` beside ``out``, marked as ours; temps that killed exports left
    there (their pid is no running process) are removed first."""
    parent = out.parent
    for old in parent.glob(f'.{glob.escape(out.name)}.tmp-*') if parent.is_dir() else []:
        if dead_temp(old):
            shutil.rmtree(old, ignore_errors=True)
    tmp = parent / f'.{out.name}.tmp-{os.getpid()}'
    try:
        if temp_owner(tmp) == os.getpid():  # this very process's, from a failed export
            shutil.rmtree(tmp)
        make_temp(tmp)
        (tmp / 'meta').mkdir()
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _failure(out, err) from err
    return tmp


def _finish(tmp: Path, out: Path) -> None:
    """Rename the finished export into place (never over anything) and unmark it."""
    (tmp / TEMP_MARKER).unlink()
    if out.exists() or out.is_symlink():  # another export finished first
        raise FileExistsError(errno.EEXIST, 'appeared while exporting', str(out))
    os.replace(tmp, out)


def _failure(out: Path, err: OSError) -> LeRobotError:
    where = f' ({err.filename})' if err.filename and str(err.filename) != str(out) else ''
    reason = ' '.join(str(err.strerror or err).split())
    msg = f'{out}: export failed, nothing written{where}: {reason}'
    return LeRobotError(msg)


def _info(
    robot: str, episodes: int, frames: int, tasks: int, cfg: ExportConfig, fps: float,
    videos: bool, features: dict[str, Any],
) -> dict[str, Any]:
    """meta/info.json."""
    return {
        'codebase_version': CODEBASE_VERSION,
        'robot_type': robot,
        'total_episodes': episodes,
        'total_frames': frames,
        'total_tasks': tasks,
        'chunks_size': cfg.chunks_size,
        'data_files_size_in_mb': cfg.data_files_size_in_mb,
        'video_files_size_in_mb': cfg.video_files_size_in_mb,
        'fps': int(fps) if float(fps).is_integer() else fps,
        'splits': {'train': f'0:{episodes}'},
        'data_path': DATA_PATH,
        'video_path': VIDEO_PATH if videos else None,
        'features': features,
    }


def _trust(
    ds: Dataset, trust: str | Path | None,
) -> tuple[dict[str, tuple[float, npt.NDArray[np.float64]]] | None, dict[str, Any] | None]:
    """Per-episode weights from the trust file (refused when stale) and its ptr.json entry."""
    if trust is None:
        return None, None
    from bag_tools.trust import dataset_content_hash, read_trust

    tf = read_trust(trust)
    weights = tf.for_dataset(ds)
    trust_meta = {'file': str(trust), 'created': tf.created, 'scorer': dict(tf.scorer),
                  'dataset_content_hash': dataset_content_hash(ds)}
    return weights, trust_meta


def _pick_robot(ds: Dataset, robot: str | None) -> str:
    """``robot``, checked to be in the dataset; by default the dataset's only robot."""
    robots = sorted(ds.manifest['robots'])
    if robot is None:
        if len(robots) != 1:
            msg = (f'{ds.root}: holds robots {robots}; a LeRobot dataset has one robot_type: '
                   'choose one with --robot')
            raise LeRobotError(msg)
        robot = robots[0]
    if robot not in ds.manifest['robots']:
        msg = f'{ds.root}: no robot {robot!r} (has {robots})'
        raise LeRobotError(msg)
    return robot


def _write_meta(
    tmp: Path, writer: _Writer, task_list: list[str], info: dict[str, Any],
    ptr_meta: dict[str, Any],
) -> None:
    """The meta/ folder: the episodes table, tasks, stats, info.json and our ptr.json."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ep_file = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
    ep_file.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(writer.rows), ep_file)
    pq.write_table(_tasks_table(task_list), tmp / 'meta' / 'tasks.parquet')
    stats = {k: _merge_stats(v) for k, v in writer.frame_stats.items()}
    (tmp / 'meta' / 'stats.json').write_text(json.dumps(stats, indent=1))
    (tmp / 'meta' / 'info.json').write_text(json.dumps(info, indent=4))
    (tmp / 'meta' / 'ptr.json').write_text(json.dumps(ptr_meta, indent=1))
