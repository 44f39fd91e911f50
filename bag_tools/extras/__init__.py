"""The ONE registry of extra observation (and extra action) message types.

Every type that can feed ``extra_state`` (or ``extra_action``) in a robot profile is described
once, by an ``ExtraType``: its dimension names, how a message becomes a vector, which slots hold
quaternions (interpolated on the shorter arc), and whether it may be an action. The profile
validator, the bag ingester and the policy node all look types up here.

Adding a type: write one module in this package that calls ``register(ExtraType(...))`` and
add its name to ``_MODULES`` below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ['ExtraType', 'extra_type', 'register', 'registered']


@dataclass(frozen=True)
class ExtraType:
    """How one message type becomes a flat float vector."""

    msgtype: str  # ROS 2 spelling: pkg/msg/Type
    dims: tuple[str, ...]  # dimension names (prefixed with the profile entry's name)
    extract: Callable[[Any], Sequence[float]]  # message -> len(dims) floats
    quaternions: tuple[int, ...] = ()  # first index of each [x, y, z, w] block
    action: bool = False  # may be an ``extra_action`` (a command, held on the grid)
    named: bool = False  # dims are the profile entry's ``joints`` (sensor_msgs/JointState)
    frames: bool = False  # a TF frame pair looked up through the tree (tf2_msgs/TFMessage)

    def __post_init__(self) -> None:
        if self.msgtype.count('/') != 2:
            msg = f'ExtraType {self.msgtype!r}: expected pkg/msg/Type'
            raise ValueError(msg)
        for q in self.quaternions:
            if q + 4 > len(self.dims):
                msg = f'ExtraType {self.msgtype}: quaternion at {q} outside {len(self.dims)} dims'
                raise ValueError(msg)


_REGISTRY: dict[str, ExtraType] = {}
_MODULES = ('geometry', 'odometry', 'joint_state', 'tf')


def register(kind: ExtraType) -> ExtraType:
    """Add ``kind`` (a module of this package calls this at import)."""
    if kind.msgtype in _REGISTRY:
        msg = f'extra type {kind.msgtype} registered twice'
        raise ValueError(msg)
    _REGISTRY[kind.msgtype] = kind
    return kind


def _load() -> None:
    if not _REGISTRY:
        for name in _MODULES:
            importlib.import_module(f'{__name__}.{name}')


def registered() -> dict[str, ExtraType]:
    """Every registered type, by ROS 2 type name."""
    _load()
    return dict(_REGISTRY)


def extra_type(msgtype: str) -> ExtraType | None:
    """The registered type ``msgtype`` (ROS 2 spelling), or None."""
    _load()
    return _REGISTRY.get(msgtype)
