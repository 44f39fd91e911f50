"""LeRobot's on-disk dataset format (v2.1 and v3.0): the facts both the reader and writer use.

A LeRobot dataset is a folder with ``meta/info.json`` (``codebase_version``, ``fps``,
``robot_type``, ``features`` with dtype/shape/names, path templates, totals) and parquet files.

- v3.0: ``data/chunk-XXX/file-YYY.parquet`` hold many episodes each (rows carry
  ``episode_index``); ``meta/episodes/chunk-XXX/file-YYY.parquet`` has one row per episode
  (``length``, ``tasks``, ``data/chunk_index``, ``data/file_index``, ``dataset_from_index``,
  ``videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp}``, ``stats/<key>/<stat>``);
  ``meta/tasks.parquet`` maps task text to ``task_index``; ``meta/stats.json``. One mp4 per camera
  holds many episodes back to back; an episode's frames are those from ``from_timestamp``.
- v2.1: one ``data/chunk-XXX/episode_YYYYYY.parquet`` and one mp4 per episode and camera;
  ``meta/episodes.jsonl``, ``meta/tasks.jsonl``, ``meta/episodes_stats.jsonl``.

Depends on numpy and json only (pyarrow and av are imported by the modules that read files).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bag_tools.errors import BagToolsError

__all__ = [
    'CODEBASE_VERSION',
    'DEFAULT_CHUNKS_SIZE',
    'DEFAULT_DATA_FILE_MB',
    'DEFAULT_VIDEO_FILE_MB',
    'INFO',
    'PTR_FRAME_COLUMNS',
    'SUPPORTED_VERSIONS',
    'LeRobotError',
    'feature_names',
    'feature_width',
    'is_lerobot_dataset',
    'read_info',
    'role_of_key',
]

INFO = Path('meta') / 'info.json'
CODEBASE_VERSION = 'v3.0'
SUPPORTED_VERSIONS = ('v2.1', 'v3.0')
DEFAULT_CHUNKS_SIZE = 1000  # files per chunk directory
DEFAULT_DATA_FILE_MB = 100  # a data parquet file is closed once it is this large
DEFAULT_VIDEO_FILE_MB = 500  # an mp4 file is closed once it is this large

#: Per-frame columns ptr adds on export (and reads back on import), beside LeRobot's own.
PTR_FRAME_COLUMNS = ('ptr.timestamp_ns', 'ptr.state_valid', 'ptr.action_valid', 'ptr.trust')

#: Columns every LeRobot data file has besides the features a profile maps.
INDEX_COLUMNS = ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index')


class LeRobotError(BagToolsError):
    """A LeRobot dataset folder is unreadable or does not hold what a profile asks for."""


def is_lerobot_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a LeRobot dataset folder (it has ``meta/info.json``)."""
    return (Path(path) / INFO).is_file()


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json``, checked for the keys the readers rely on."""
    file = root / INFO
    try:
        info: dict[str, Any] = json.loads(file.read_text())
    except OSError as err:
        msg = f'{file}: cannot read: {err.strerror or err}'
        raise LeRobotError(msg) from err
    except ValueError as err:
        msg = f'{file}: not valid JSON: {err}'
        raise LeRobotError(msg) from err
    version = info.get('codebase_version')
    if version not in SUPPORTED_VERSIONS:
        msg = (f'{file}: codebase_version {version!r}; ptr reads LeRobot '
               f'{" and ".join(SUPPORTED_VERSIONS)} (convert older datasets with LeRobot first)')
        raise LeRobotError(msg)
    for key in ('fps', 'features', 'data_path'):
        if key not in info:
            msg = f'{file}: key {key} missing'
            raise LeRobotError(msg)
    fps = info['fps']
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0:
        msg = f'{file}: key fps: expected a positive number, got {fps!r}'
        raise LeRobotError(msg)
    if not isinstance(info['features'], Mapping):
        msg = f'{file}: key features: expected a mapping'
        raise LeRobotError(msg)
    return info


def feature_width(feature: Mapping[str, Any]) -> int:
    """Number of values per frame of a (non-image) feature: the product of its shape."""
    shape = feature.get('shape') or [1]
    return int(math.prod(int(s) for s in shape))


def _flatten(names: Any) -> list[str]:
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping):  # v2.0 style: {"motors": [...]} (several groups in order)
        return [n for group in names.values() for n in _flatten(group)]
    if isinstance(names, Sequence):
        return [n for item in names for n in _flatten(item)]
    return [str(names)]


def feature_names(key: str, feature: Mapping[str, Any]) -> list[str]:
    """One name per value of a vector feature.

    Real files spell names as a flat list, a list nested one level (``[[...]]``), a mapping of
    groups, or ``null``; missing or mis-sized names become ``<key>.<i>``.
    """
    width = feature_width(feature)
    raw = feature.get('names')
    names = _flatten(raw) if raw is not None else []
    if len(names) != width or len(set(names)) != len(names):
        return [f'{key}.{i}' for i in range(width)]
    return [str(n) for n in names]


def role_of_key(key: str) -> str:
    """The camera role of an image/video feature key: ``observation.images.cam_high`` ->
    ``cam_high``, ``observation.image`` -> ``image`` (an identifier, as profiles require)."""
    tail = key.removeprefix('observation.images.').removeprefix('observation.')
    role = re.sub(r'\W+', '_', tail).strip('_') or 'camera'
    return f'cam_{role}' if role[0].isdigit() else role
