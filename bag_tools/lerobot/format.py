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

Also here: reading a set's metadata and parquet files with one line naming the file on any
failure (``read_json``, ``read_jsonl``, ``read_table``...); pyarrow is imported only when a
parquet file is read, av by the modules that decode video.
"""

from __future__ import annotations

import json
import math
import os
import re
import string
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bag_tools.errors import BagToolsError

__all__ = [
    'CODEBASE_VERSION',
    'DEFAULT_CHUNKS_SIZE',
    'DEFAULT_DATA_FILE_MB',
    'DEFAULT_VIDEO_FILE_MB',
    'INDEX_COLUMNS',
    'INFO',
    'MAX_EPISODE_BYTES',
    'MAX_FILE_ROWS',
    'MAX_FPS',
    'MAX_FRAME_BYTES',
    'MAX_IMAGE_SIDE',
    'MAX_VECTOR_WIDTH',
    'MIN_FPS',
    'PTR_FRAME_COLUMNS',
    'SUPPORTED_VERSIONS',
    'LeRobotError',
    'absent',
    'feature_names',
    'feature_width',
    'fill_template',
    'inside',
    'is_lerobot_dataset',
    'num_rows',
    'optional_file',
    'read_info',
    'read_json',
    'read_jsonl',
    'read_table',
    'role_of_key',
    'schema_names',
    'shown',
]

INFO = Path('meta') / 'info.json'
CODEBASE_VERSION = 'v3.0'
SUPPORTED_VERSIONS = ('v2.1', 'v3.0')
DEFAULT_CHUNKS_SIZE = 1000  # files per chunk directory
DEFAULT_DATA_FILE_MB = 100  # a data parquet file is closed once it is this large
DEFAULT_VIDEO_FILE_MB = 500  # an mp4 file is closed once it is this large

# Bounds on what a dataset's metadata may ask ptr to hold, checked before anything is allocated
# (a crafted ``shape: [1000000000]`` once grew past 6 GB). Real sets are far inside them.
#: Frames per second: slower than one frame per 100 s or faster than 1 kHz is not robot data.
MIN_FPS, MAX_FPS = 0.01, 1000.0
#: Values per frame of a state or action feature (humanoids with hands: ~60).
MAX_VECTOR_WIDTH = 4096
#: Pixels per side of an image a profile decodes to, or of a video ptr decodes.
MAX_IMAGE_SIDE = 8192
#: Bytes of one decoded frame: state + action + every camera at the profile's image size.
MAX_FRAME_BYTES = 256 * 2**20
#: Bytes of one decoded episode in memory (rows x frame bytes).
MAX_EPISODE_BYTES = 16 * 2**30
#: Rows of one data parquet file (LeRobot closes its files at ~100 MB: far fewer rows).
MAX_FILE_ROWS = 100_000_000
_MAX_PAD = 20  # widest zero pad in a path template (an int64 has 19 digits)

#: Per-frame columns ptr adds on export (and reads back on import), beside LeRobot's own.
PTR_FRAME_COLUMNS = ('ptr.timestamp_ns', 'ptr.state_valid', 'ptr.action_valid', 'ptr.trust')

#: Columns every LeRobot data file has besides the features a profile maps.
INDEX_COLUMNS = ('timestamp', 'frame_index', 'episode_index', 'index', 'task_index')

#: The placeholders each version's path templates may use.
TEMPLATE_FIELDS = {
    'v2.1': {'data_path': ('episode_chunk', 'episode_index'),
             'video_path': ('episode_chunk', 'episode_index', 'video_key')},
    'v3.0': {'data_path': ('chunk_index', 'file_index'),
             'video_path': ('chunk_index', 'file_index', 'video_key')},
}


class LeRobotError(BagToolsError):
    """A LeRobot dataset folder is unreadable or does not hold what a profile asks for."""


def is_lerobot_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a LeRobot dataset folder (it has ``meta/info.json``)."""
    return (Path(path) / INFO).is_file()


def shown(value: Any) -> str:
    """``repr(value)`` cut to one short line (metadata values can be arbitrarily large)."""
    text = repr(value)
    return text if len(text) <= 80 else f'{text[:77]}...'


def absent(path: Path) -> str:
    """Why ``path`` cannot be read as a file: ``is missing`` or ``is not a file``."""
    return 'is not a file' if path.exists() else 'is missing'


def optional_file(file: Path) -> bool:
    """Whether an optional metadata file is there; a folder (or socket...) in its place is
    refused with one line."""
    if file.exists() and not file.is_file():
        msg = f'{file}: {absent(file)}'
        raise LeRobotError(msg)
    return file.is_file()


def _read_text(file: Path) -> str:
    try:
        return file.read_text()
    except (OSError, UnicodeDecodeError) as err:
        msg = f'{file}: cannot read: {getattr(err, "strerror", None) or err}'
        raise LeRobotError(msg) from err


def _json_object(text: str, where: str) -> dict[str, Any]:
    """``text`` parsed as one JSON object; anything else is one line starting with ``where``."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        msg = f'{where}: not valid JSON: {err}'
        raise LeRobotError(msg) from err
    if not isinstance(data, dict):
        msg = f'{where}: expected a JSON object, got {shown(data)}'
        raise LeRobotError(msg)
    return data


def read_json(file: Path) -> dict[str, Any]:
    """A metadata file holding one JSON object."""
    return _json_object(_read_text(file), str(file))


def read_jsonl(file: Path) -> list[tuple[str, dict[str, Any]]]:
    """The objects of a JSON-lines file, each with ``<file>: line <n>: key`` for messages."""
    return [(f'{file}: line {n}: key', _json_object(line, f'{file}: line {n}'))
            for n, line in enumerate(_read_text(file).splitlines(), 1) if line.strip()]


def _parquet(file: Path, read: Callable[[Path], Any]) -> Any:
    """``read(file)`` with pyarrow's failures as one line naming the file."""
    import pyarrow as pa

    try:
        return read(file)
    except (OSError, pa.ArrowException) as err:
        msg = f'{file}: cannot read parquet: {" ".join(str(err).split())}'
        raise LeRobotError(msg) from err


def read_table(file: Path, columns: Sequence[str] | None = None, filters: Any = None) -> Any:
    """A parquet file (its ``columns``, the rows ``filters`` keeps) as a pyarrow table."""
    import pyarrow.parquet as pq

    if not file.is_file():  # pyarrow would read a folder as a partitioned dataset
        msg = f'{file}: {absent(file)}'
        raise LeRobotError(msg)
    return _parquet(file, lambda f: pq.read_table(
        f, columns=list(columns) if columns else None, filters=filters))


def num_rows(file: Path) -> int:
    """Rows of a data file from its footer, refused past ``MAX_FILE_ROWS``."""
    import pyarrow.parquet as pq

    rows = int(_parquet(file, lambda f: pq.read_metadata(f).num_rows))
    if rows > MAX_FILE_ROWS:
        msg = f'{file}: {rows} rows; ptr reads data files of at most {MAX_FILE_ROWS} rows'
        raise LeRobotError(msg)
    return rows


def schema_names(file: Path) -> list[str]:
    """The column names of a parquet file."""
    import pyarrow.parquet as pq

    return list(_parquet(file, lambda f: pq.read_schema(f).names))


def read_info(root: Path) -> dict[str, Any]:
    """``meta/info.json``, checked for the keys the readers rely on (one line naming the key)."""
    file = root / INFO
    info = read_json(file)
    version = info.get('codebase_version')
    if version not in SUPPORTED_VERSIONS:
        msg = (f'{file}: codebase_version {shown(version)}; ptr reads LeRobot '
               f'{" and ".join(SUPPORTED_VERSIONS)} (convert older datasets with LeRobot first)')
        raise LeRobotError(msg)
    for key in ('fps', 'features', 'data_path'):
        if key not in info:
            msg = f'{file}: key {key} missing'
            raise LeRobotError(msg)
    fps = info['fps']
    if (isinstance(fps, bool) or not isinstance(fps, (int, float))
            or not MIN_FPS <= fps <= MAX_FPS):
        msg = f'{file}: key fps: expected a number in [{MIN_FPS:g}, {MAX_FPS:g}], got {shown(fps)}'
        raise LeRobotError(msg)
    chunks = info.get('chunks_size')
    if chunks is not None and (isinstance(chunks, bool) or not isinstance(chunks, int)
                               or chunks < 1):
        msg = f'{file}: key chunks_size: expected a positive integer, got {shown(chunks)}'
        raise LeRobotError(msg)
    if info.get('splits') is not None and not isinstance(info['splits'], Mapping):
        msg = f'{file}: key splits: expected an object, got {shown(info["splits"])}'
        raise LeRobotError(msg)
    for key, fields in TEMPLATE_FIELDS[version].items():
        if info.get(key) is not None or key == 'data_path':
            fill_template(info[key], {f: 'key' if f == 'video_key' else 0 for f in fields},
                          where=f'{file}: key {key}')
    _check_features(info['features'], file)
    return info


def _check_features(features: Any, file: Path) -> None:
    """Every feature is an object with a string dtype and a shape of positive integers."""
    if not isinstance(features, Mapping):
        msg = f'{file}: key features: expected an object, got {type(features).__name__}'
        raise LeRobotError(msg)
    for key, feat in features.items():
        where = f'{file}: key features.{key}'
        if not isinstance(feat, Mapping):
            msg = f'{where}: expected an object, got {shown(feat)}'
            raise LeRobotError(msg)
        if not isinstance(feat.get('dtype'), str):
            msg = f'{where}.dtype: expected a string, got {shown(feat.get("dtype"))}'
            raise LeRobotError(msg)
        shape = feat.get('shape')
        if shape is not None and (not isinstance(shape, list) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)):
            msg = f'{where}.shape: expected a list of positive integers, got {shown(shape)}'
            raise LeRobotError(msg)
        if feat.get('info') is not None and not isinstance(feat['info'], Mapping):
            msg = f'{where}.info: expected an object, got {shown(feat["info"])}'
            raise LeRobotError(msg)


_PAD = re.compile(r'(0?)(\d{0,3})d?')


def fill_template(template: Any, values: Mapping[str, int | str], *, where: str) -> str:
    """``template`` with its ``{name}`` / ``{name:03d}`` placeholders replaced by ``values``.

    Not ``str.format``: a template comes from the dataset, so attribute or index access
    (``{x.__class__}``, ``{x[0]}``), conversions, nested or unknown fields and pads wider than
    an int64 are refused with one line starting with ``where`` (the file and key).
    """
    if not isinstance(template, str):
        msg = f'{where}: expected a path template string, got {shown(template)}'
        raise LeRobotError(msg)
    out = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        msg = f'{where}: {shown(template)} is not a path template: {err}'
        raise LeRobotError(msg) from err
    for literal, name, spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name not in values or conversion:
            msg = (f'{where}: placeholder {{{name}{"!" + conversion if conversion else ""}}} in '
                   f'{shown(template)}; allowed: {", ".join("{" + v + "}" for v in values)}')
            raise LeRobotError(msg)
        out.append(_pad(values[name], spec or '', name, where))
    return ''.join(out)


def _pad(value: int | str, spec: str, name: str, where: str) -> str:
    """One placeholder's text: an integer zero- or space-padded as ``spec`` (``03d``) says."""
    m = _PAD.fullmatch(spec)
    width = int(m.group(2) or 0) if m else 0
    if m is None or width > _MAX_PAD or (spec and isinstance(value, str)):
        msg = (f'{where}: placeholder {{{name}:{spec}}}: only an integer pad such as '
               f'{{{name}:03d}} (width <= {_MAX_PAD}) is allowed')
        raise LeRobotError(msg)
    text = str(value)
    return text.rjust(width, '0' if m.group(1) else ' ')


def _allowed_roots(root: Path) -> list[Path]:
    """Where a dataset's files may live: its folder and, for a Hugging Face hub cache snapshot
    (``<repo>/snapshots/<rev>/``, whose files are symlinks into ``<repo>/blobs/``), that blobs
    folder -- the layout ``huggingface_hub`` downloads into."""
    base = root.resolve()
    roots = [base]
    snapshot = root.absolute()
    for parent in (snapshot, *snapshot.parents):
        if parent.parent.name == 'snapshots' and (parent.parent.parent / 'blobs').is_dir():
            roots.append((parent.parent.parent / 'blobs').resolve())
            break
    return roots


def inside(root: Path, relative: str, *, where: str) -> Path:
    """``root / relative``, refused unless it resolves (symlinks included) inside ``root`` (or
    a hub cache snapshot's ``blobs``: ``_allowed_roots``); the name itself may not leave it."""
    path = root / relative
    base = root.resolve()
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop
        msg = f'{where}: {relative!r} cannot be resolved: {err}'
        raise LeRobotError(msg) from err
    lexical = Path(os.path.normpath(root.absolute() / relative))
    named_inside = lexical.is_relative_to(Path(os.path.normpath(root.absolute())))
    if (Path(relative).is_absolute() or not named_inside
            or not any(real.is_relative_to(r) for r in _allowed_roots(root))):
        msg = (f'{where}: {relative!r} resolves to {real}, outside the dataset folder {base}; '
               'ptr reads only files inside it')
        raise LeRobotError(msg)
    return path


def feature_width(feature: Mapping[str, Any], *, key: str = '?',
                  where: str = str(INFO)) -> int:
    """Number of values per frame of a (non-image) feature: the product of its shape, at most
    ``MAX_VECTOR_WIDTH``."""
    shape = feature.get('shape') or [1]
    if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
        msg = f'{where}: key features.{key}.shape: expected a list of positive integers'
        raise LeRobotError(msg)
    width = math.prod(shape)
    if width > MAX_VECTOR_WIDTH:
        msg = (f'{where}: key features.{key}.shape: {shape} is {width} values per frame; ptr '
               f'reads state/action vectors of at most {MAX_VECTOR_WIDTH}')
        raise LeRobotError(msg)
    return width


def _flatten(names: Any) -> list[str]:
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping):  # v2.0 style: {"motors": [...]} (several groups in order)
        return [n for group in names.values() for n in _flatten(group)]
    if isinstance(names, Sequence):
        return [n for item in names for n in _flatten(item)]
    return [str(names)]


def feature_names(key: str, feature: Mapping[str, Any], *, where: str = str(INFO)) -> list[str]:
    """One name per value of a vector feature.

    Real files spell names as a flat list, a list nested one level (``[[...]]``), a mapping of
    groups, or ``null``; missing or mis-sized names become ``<key>.<i>``.
    """
    width = feature_width(feature, key=key, where=where)
    raw = feature.get('names')
    try:
        names = _flatten(raw) if raw is not None else []
    except RecursionError:  # absurdly nested: the default names
        names = []
    if len(names) != width or len(set(names)) != len(names):
        return [f'{key}.{i}' for i in range(width)]
    return [str(n) for n in names]


def role_of_key(key: str) -> str:
    """The camera role of an image/video feature key: ``observation.images.cam_high`` ->
    ``cam_high``, ``observation.image`` -> ``image`` (an identifier, as profiles require)."""
    tail = key.removeprefix('observation.images.').removeprefix('observation.')
    role = re.sub(r'\W+', '_', tail).strip('_') or 'camera'
    return f'cam_{role}' if role[0].isdigit() else role
