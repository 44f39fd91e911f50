"""The layout of robots trained together: padded state/action widths, per-robot masks, the
union of camera roles and the one image size they share -- a training concept, built from the
manifests of the datasets a run mixes (``bag_tools`` stores each robot at its own width)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import Manifest
from bag_tools.errors import DatasetError
from bag_tools.robots import RobotEntry, shared_image_size
from ptr_core.errors import PtrError

__all__ = ['UnifiedLayout', 'unified_layout']


@dataclass(frozen=True)
class UnifiedLayout:
    """Padded widths and per-robot masks for training several robots (or datasets) together."""

    state_dim: int
    action_dim: int
    robots: tuple[str, ...]  # index = robot id
    camera_roles: tuple[str, ...]  # union over robots, sorted
    image_size: tuple[int, int]
    state_mask: dict[str, npt.NDArray[np.bool_]]  # robot -> [state_dim]
    action_mask: dict[str, npt.NDArray[np.bool_]]  # robot -> [action_dim]
    camera_mask: dict[str, npt.NDArray[np.bool_]]  # robot -> [len(camera_roles)]

    def robot_index(self, robot: str) -> int:
        return self.robots.index(robot)

    def to_json(self) -> dict[str, Any]:
        return {
            'state_dim': self.state_dim,
            'action_dim': self.action_dim,
            'robots': list(self.robots),
            'camera_roles': list(self.camera_roles),
            'image_size': list(self.image_size),
            'state_mask': {k: v.tolist() for k, v in self.state_mask.items()},
            'action_mask': {k: v.tolist() for k, v in self.action_mask.items()},
            'camera_mask': {k: v.tolist() for k, v in self.camera_mask.items()},
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UnifiedLayout:
        return cls(
            state_dim=int(obj['state_dim']),
            action_dim=int(obj['action_dim']),
            robots=tuple(obj['robots']),
            camera_roles=tuple(obj['camera_roles']),
            image_size=(int(obj['image_size'][0]), int(obj['image_size'][1])),
            state_mask={k: np.asarray(v, bool) for k, v in obj['state_mask'].items()},
            action_mask={k: np.asarray(v, bool) for k, v in obj['action_mask'].items()},
            camera_mask={k: np.asarray(v, bool) for k, v in obj['camera_mask'].items()},
        )


def unified_layout(manifests: Sequence[Manifest]) -> UnifiedLayout:
    """Merge the robots of several manifests into one padded layout.

    A robot that appears in several manifests must have the same state/action names in each.
    All robots with cameras must share one image size (``bag_tools.robots.shared_image_size``;
    ingest resizes to the profile's size).
    """
    robots: dict[str, RobotEntry] = {}
    for manifest in manifests:
        for name, entry in manifest['robots'].items():
            prev = robots.get(name)
            if prev is not None and (
                prev['state_names'] != entry['state_names']
                or prev['action_names'] != entry['action_names']
            ):
                msg = f'robot {name!r} has different state/action names in two datasets'
                raise PtrError(msg)
            robots.setdefault(name, entry)
    if not robots:
        msg = 'no robots: the dataset(s) hold no episodes yet'
        raise PtrError(msg)
    names = tuple(sorted(robots))
    state_dim = max(len(r['state_names']) for r in robots.values())
    action_dim = max(len(r['action_names']) for r in robots.values())
    roles = tuple(sorted({role for r in robots.values() for role in r['camera_roles']}))
    try:
        size = shared_image_size(robots, where='the training data')
    except DatasetError as err:
        msg = f'{err}'
        raise PtrError(msg) from err
    state_mask, action_mask, camera_mask = {}, {}, {}
    for name, entry in robots.items():
        state_mask[name] = np.arange(state_dim) < len(entry['state_names'])
        action_mask[name] = np.arange(action_dim) < len(entry['action_names'])
        camera_mask[name] = np.array([role in entry['camera_roles'] for role in roles], bool)
    return UnifiedLayout(
        state_dim=state_dim,
        action_dim=action_dim,
        robots=names,
        camera_roles=roles,
        image_size=size,
        state_mask=state_mask,
        action_mask=action_mask,
        camera_mask=camera_mask,
    )
