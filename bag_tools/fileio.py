"""Read a JSON or YAML file a user gave (a profile, a config, a manifest, a trust file) and name
the file in the one-line error when it cannot be: missing, unreadable, not UTF-8, not valid
JSON/YAML, or not the top-level type asked for; and write a file whole or not at all. Every
library reads and writes its small files through these, raising its own error family
(``error=``)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from bag_tools.errors import BagToolsError

__all__ = ['read_head', 'read_json', 'read_yaml', 'write_atomic']


def _text(path: Path, what: str, error: type[Exception], missing: str = '') -> str:
    cause: Exception
    try:
        return path.read_text(encoding='utf-8')
    except FileNotFoundError as err:
        if missing:
            raise error(missing) from err
        reason, cause = 'no such file', err
    except IsADirectoryError as err:
        reason, cause = 'a folder, not a file', err
    except OSError as err:
        reason, cause = str(err.strerror or err), err
    except UnicodeDecodeError as err:
        reason, cause = f'not UTF-8 text (byte {err.start})', err
    msg = f'{path}: cannot read {what}: {reason}'
    raise error(msg) from cause


def _typed(path: Path, data: Any, what: str, want: type | None, error: type[Exception]) -> Any:
    if want is not None and not isinstance(data, want):
        msg = f'{path}: expected a {what} with a {want.__name__} at the top level, got ' \
              f'{type(data).__name__}'
        raise error(msg)
    return data


def read_head(path: str | Path, size: int = 4096) -> bytes | None:
    """The first ``size`` bytes of ``path`` when it is a regular file (not a link, a device or a
    pipe, which are never opened), else None: how a writer recognises a file it made before
    replacing it."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return None
    try:
        with path.open('rb') as f:
            return f.read(size)
    except OSError:
        return None


def read_json(path: str | Path, what: str = 'JSON file', *, want: type | None = dict,
              error: type[Exception] = BagToolsError, missing: str = '') -> Any:
    """The parsed JSON of ``path`` (``what`` names it in errors), a ``want`` at the top level
    (None: anything); ``missing``, when given, is the whole message for a file that is not
    there (what to do about it)."""
    path = Path(path)
    text = _text(path, what, error, missing)
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as err:
        msg = f'{path}: not valid JSON ({what}): {" ".join(str(err).split())[:200]}'
        raise error(msg) from err
    return _typed(path, data, what, want, error)


def read_yaml(path: str | Path, what: str = 'YAML file', *, want: type | None = dict,
              empty: Any = None, error: type[Exception] = BagToolsError) -> Any:
    """The parsed YAML of ``path`` (``what`` names it in errors), a ``want`` at the top level
    (None: anything); an empty file gives ``empty`` when that is not None."""
    path = Path(path)
    text = _text(path, what, error)
    try:
        data = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as err:
        msg = f'{path}: not valid YAML ({what}): {" ".join(str(err).split())[:200]}'
        raise error(msg) from err
    if data is None and empty is not None:
        return empty
    return _typed(path, data, what, want, error)


def write_atomic(path: str | Path, data: str | bytes, *, what: str = '',
                 error: type[Exception] = BagToolsError, make_folders: bool = False) -> Path:
    """Write ``path`` whole or not at all: a new temp file beside it (never through a planted
    link), synced to disk, renamed over it. A failure (a full disk, a read-only folder) removes
    the temp file (and the folders ``make_folders`` made for it), leaves an existing ``path``
    as it was and raises ``error``: ``<path>: cannot write[ <what>]: <reason>``."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    made = [p for p in (path.parent, *path.parent.parents) if not p.exists()] \
        if make_folders else []
    tmp = path.with_name(f'.tmp-{path.name}-{os.getpid()}')
    try:
        if made:
            path.parent.mkdir(parents=True, exist_ok=True)
        if tmp.is_file() and not tmp.is_symlink():  # this pid's own, from a writer now gone
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0),
                     0o644)
        with os.fdopen(fd, 'wb') as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        label = f' {what}' if what else ''
        msg = f'{path}: cannot write{label}: {err.strerror or err}'
        raise error(msg) from err
    return path
