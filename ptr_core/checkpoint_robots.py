"""A checkpoint's robot entries (``robots.json``) without their own copy of the image size.

The image size the policy sees has one owner in a checkpoint: the layout in
``preprocess.json`` (``layout.image_size``). ``robots.json`` is written without the copies a
robot entry and its profile would carry (``image_size`` and ``profile.image_size``) and read
back with them filled in from the layout, so callers that ask a robot entry still get it.
Older checkpoints, which hold the copies, read the same. A copy that differs from the layout
(a robot without cameras) is not a copy of that fact and is kept as written.

Torch-free (the simulated arm reads a checkpoint's profile with it).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptr_core.errors import CheckpointError


def _size(value: Any) -> list[int] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        return [int(v) for v in value]
    return None


def robots_to_file(robots: Mapping[str, Any], image_size: tuple[int, int]) -> dict[str, Any]:
    """``robots`` as ``robots.json`` holds them: without copies of the layout's image size."""
    size = [int(image_size[0]), int(image_size[1])]
    out: dict[str, Any] = {}
    for name, entry in robots.items():
        entry = copy.deepcopy(dict(entry))
        if _size(entry.get('image_size')) == size:
            del entry['image_size']
        profile = entry.get('profile')
        if isinstance(profile, dict) and _size(profile.get('image_size')) == size:
            del profile['image_size']
        out[name] = entry
    return out


def robots_from_file(robots: Mapping[str, Any], image_size: tuple[int, int]) -> dict[str, Any]:
    """The robot entries of ``robots.json`` with the image size filled in from the layout."""
    size = [int(image_size[0]), int(image_size[1])]
    out: dict[str, Any] = {}
    for name, entry in robots.items():
        entry = copy.deepcopy(entry)
        if isinstance(entry, dict):
            entry.setdefault('image_size', list(size))
            profile = entry.get('profile')
            if isinstance(profile, dict):
                profile.setdefault('image_size', list(size))
        out[name] = entry
    return out


def layout_image_size(root: Path) -> tuple[int, int]:
    """The image size ``(H, W)`` of a checkpoint: its layout's, in ``preprocess.json``."""
    file = root / 'preprocess.json'
    try:
        h, w = json.loads(file.read_text())['layout']['image_size']
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        msg = f'{file}: no layout.image_size: {err!r}'
        raise CheckpointError(msg) from err
    return int(h), int(w)


def read_robots(root: str | Path) -> dict[str, Any]:
    """The robot entries of checkpoint ``root`` (``robots.json``, image size from the layout)."""
    root = Path(root)
    file = root / 'robots.json'
    try:
        robots = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError) as err:
        msg = f'{file}: cannot read: {err}'
        raise CheckpointError(msg) from err
    if not isinstance(robots, dict):
        msg = f'{file}: expected a mapping of robot -> entry'
        raise CheckpointError(msg)
    return robots_from_file(robots, layout_image_size(root))
