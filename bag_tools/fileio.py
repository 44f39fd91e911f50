"""Read a JSON or YAML file a user gave (a profile, a config, a manifest, a trust file) and name
the file in the one-line error when it cannot be: missing, unreadable, not UTF-8, not valid
JSON/YAML, or not the top-level type asked for. Every library reads its files through these two
functions, raising its own error family (``error=``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from bag_tools.errors import BagToolsError

__all__ = ['read_json', 'read_yaml']


def _text(path: Path, what: str, error: type[Exception]) -> str:
    cause: Exception
    try:
        return path.read_text(encoding='utf-8')
    except FileNotFoundError as err:
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


def read_json(path: str | Path, what: str = 'JSON file', *, want: type | None = dict,
              error: type[Exception] = BagToolsError) -> Any:
    """The parsed JSON of ``path`` (``what`` names it in errors), a ``want`` at the top level
    (None: anything)."""
    path = Path(path)
    text = _text(path, what, error)
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
