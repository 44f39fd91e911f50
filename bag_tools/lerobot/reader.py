"""Reading one episode of a LeRobot v2.1 / v3.0 folder as the data holds it.

``read_episode`` turns one episode (listed by ``bag_tools.lerobot.source.LeRobotSource``) into an
``EpisodeData`` at the profile's image size, with a sync report in ptr's shape (data timestamps
against the fps grid, video frame times against the data timestamps -- what LeRobot's own loader
checks with its ``tolerance_s``). Sizes are bounded before anything is allocated
(``format.MAX_*``); an unreadable column or file is one ``LeRobotError`` line naming the episode
and the file.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import ImageDecodeError
from bag_tools.lerobot.format import (
    INDEX_COLUMNS,
    MAX_EPISODE_BYTES,
    MAX_FRAME_BYTES,
    LeRobotError,
    read_table,
    schema_names,
    shown,
)
from bag_tools.lerobot.profile import LeRobotCamera, LeRobotProfile
from bag_tools.lerobot.source import EpisodeRef, LeRobotSource, VideoRef
from bag_tools.lerobot.video import DecodedFrames, decode_frames, raw_image
from bag_tools.observation import decode_image
from bag_tools.sync import TopicReport

__all__ = ['EpisodeRef', 'LeRobotSource', 'VideoRef', 'frame_bytes', 'read_episode']

CLOCK = 'timestamp'  # the clock name in sync reports of imported episodes


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
    present = set(schema_names(ref.data_file))
    ptr_cols: list[str] = [c for c in ('ptr.timestamp_ns', 'ptr.state_valid', 'ptr.action_valid')
                if c in present]
    ptr_cols += [f'ptr.image_valid.{c.role}' for c in profile.cameras
                 if f'ptr.image_valid.{c.role}' in present]
    cols = [*keys, *(c for c in INDEX_COLUMNS if c in present), *ptr_cols,
            *(c.key for c in images)]
    table = read_table(ref.data_file, list(dict.fromkeys(cols)),
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
                got = DecodedFrames.none(n, profile.image_size, cam.depth)
            else:
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
