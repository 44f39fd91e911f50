"""Robot profiles: what a robot's bags hold and how they become state, action and images.

A profile is a YAML file (``config/robots/<name>.yaml``) validated on load; every error is a
``ProfileError`` naming the file and the key. ``RobotProfile.to_dict()`` is the resolved profile
(every default filled in); it is stored in the dataset manifest and in checkpoints, and
``RobotProfile.from_dict`` rebuilds it on the robot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from bag_tools.errors import ProfileError

__all__ = [
    'COMMAND_TYPES',
    'EXTRA_STATE_TYPES',
    'ActionSource',
    'ActionSpec',
    'CameraSpec',
    'EpisodeSpec',
    'ExtraStateSpec',
    'RobotProfile',
    'load_profile',
    'normalize_msgtype',
]

#: Command message types an ``action.topic`` may carry.
COMMAND_TYPES = (
    'trajectory_msgs/msg/JointTrajectory',
    'std_msgs/msg/Float64MultiArray',
    'sensor_msgs/msg/JointState',
)

#: Extra observation types and the names of their dimensions (flattened after the joints).
EXTRA_STATE_TYPES: dict[str, tuple[str, ...]] = {
    'geometry_msgs/msg/PoseStamped': (
        'position.x', 'position.y', 'position.z',
        'orientation.x', 'orientation.y', 'orientation.z', 'orientation.w',
    ),
    'geometry_msgs/msg/Pose': (
        'position.x', 'position.y', 'position.z',
        'orientation.x', 'orientation.y', 'orientation.z', 'orientation.w',
    ),
    'geometry_msgs/msg/WrenchStamped': (
        'force.x', 'force.y', 'force.z', 'torque.x', 'torque.y', 'torque.z',
    ),
    'geometry_msgs/msg/Wrench': (
        'force.x', 'force.y', 'force.z', 'torque.x', 'torque.y', 'torque.z',
    ),
    'geometry_msgs/msg/TwistStamped': (
        'linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z',
    ),
    'geometry_msgs/msg/Twist': (
        'linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z',
    ),
    'geometry_msgs/msg/PointStamped': ('x', 'y', 'z'),
    'geometry_msgs/msg/Point': ('x', 'y', 'z'),
    'geometry_msgs/msg/Vector3Stamped': ('x', 'y', 'z'),
    'geometry_msgs/msg/Vector3': ('x', 'y', 'z'),
    'sensor_msgs/msg/JointState': (),  # dims: the entry's `joints`
}

_TOP_KEYS = {
    'robot', 'joints', 'state_topic', 'action', 'cameras', 'image_size', 'rate_hz',
    'joint_limits', 'task', 'task_topic', 'extra_state', 'episodes', 'image_tolerance_s',
    'chunk_length',
}
_REQUIRED = ('robot', 'joints', 'state_topic', 'action', 'rate_hz', 'joint_limits')


def normalize_msgtype(msgtype: str) -> str:
    """``pkg/Type`` and ``pkg/msg/Type`` are the same type; return the ROS 2 spelling."""
    parts = msgtype.strip().split('/')
    if len(parts) == 2:
        return f'{parts[0]}/msg/{parts[1]}'
    return msgtype.strip()


class ActionSource(str, Enum):
    """Where the action comes from: a command topic, or the next grid step's state."""

    COMMAND = 'command'
    NEXT_STATE = 'next_state'


@dataclass(frozen=True)
class ActionSpec:
    source: ActionSource
    topic: str | None
    names: tuple[str, ...]


@dataclass(frozen=True)
class CameraSpec:
    role: str
    topic: str
    depth: bool = False


@dataclass(frozen=True)
class ExtraStateSpec:
    topic: str
    type: str
    name: str  # prefix of the dimension names
    joints: tuple[str, ...] = ()  # JointState only: its joints, in order (the dimension names)

    @property
    def dim_names(self) -> tuple[str, ...]:
        if self.joints:
            return self.joints
        return tuple(f'{self.name}.{d}' for d in EXTRA_STATE_TYPES[self.type])


@dataclass(frozen=True)
class EpisodeSpec:
    marker_topic: str | None = None
    max_gap_s: float = 1.0


@dataclass(frozen=True)
class RobotProfile:
    """A validated robot profile (see the module docstring and docs/ingest.md)."""

    robot: str
    joints: tuple[str, ...]
    state_topic: str
    action: ActionSpec
    cameras: tuple[CameraSpec, ...]
    image_size: tuple[int, int]  # (H, W)
    rate_hz: float
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    task: str = ''
    task_topic: str | None = None
    extra_state: tuple[ExtraStateSpec, ...] = ()
    episodes: EpisodeSpec = EpisodeSpec()
    image_tolerance_s: float = 0.2
    chunk_length: int = 16
    source: str = field(default='<dict>', compare=False)  # where it was loaded from (messages)

    # -- derived ---------------------------------------------------------------------------
    @property
    def state_names(self) -> list[str]:
        names = list(self.joints)
        for extra in self.extra_state:
            names += extra.dim_names
        return names

    @property
    def action_names(self) -> list[str]:
        return list(self.action.names)

    @property
    def camera_roles(self) -> list[str]:
        return sorted(c.role for c in self.cameras)

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.rate_hz)

    def camera(self, role: str) -> CameraSpec:
        for cam in self.cameras:
            if cam.role == role:
                return cam
        msg = f'{self.source}: no camera role {role!r} (has {self.camera_roles})'
        raise ProfileError(msg)

    def topics(self) -> list[str]:
        """Every topic this profile reads from a bag."""
        topics = [self.state_topic]
        if self.action.topic:
            topics.append(self.action.topic)
        topics += [c.topic for c in self.cameras]
        topics += [e.topic for e in self.extra_state]
        if self.task_topic:
            topics.append(self.task_topic)
        if self.episodes.marker_topic:
            topics.append(self.episodes.marker_topic)
        return list(dict.fromkeys(topics))

    # -- (de)serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The resolved profile, in the YAML schema, every default filled in."""
        action: dict[str, Any] = {'source': self.action.source.value}
        if self.action.topic:
            action['topic'] = self.action.topic
            action['names'] = list(self.action.names)
        out: dict[str, Any] = {
            'robot': self.robot,
            'joints': list(self.joints),
            'state_topic': self.state_topic,
            'action': action,
            'cameras': {
                c.role: {'topic': c.topic, 'depth': c.depth} for c in self.cameras
            },
            'image_size': list(self.image_size) if self.cameras else None,
            'rate_hz': self.rate_hz,
            'joint_limits': {'lower': list(self.joint_lower), 'upper': list(self.joint_upper)},
            'task': self.task,
            'task_topic': self.task_topic,
            'extra_state': [
                {'topic': e.topic, 'type': e.type, 'name': e.name,
                 **({'joints': list(e.joints)} if e.joints else {})}
                for e in self.extra_state
            ],
            'episodes': {
                'marker_topic': self.episodes.marker_topic,
                'max_gap_s': self.episodes.max_gap_s,
            },
            'image_tolerance_s': self.image_tolerance_s,
            'chunk_length': self.chunk_length,
        }
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = '<dict>') -> RobotProfile:
        """Validate a profile mapping; raise ``ProfileError`` naming ``source`` and the key."""
        return _Parser(source).profile(d)


def load_profile(path: str | Path) -> RobotProfile:
    """Load and validate ``config/robots/<name>.yaml``."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        msg = f'{path}: cannot read robot profile: {err.strerror or err}'
        raise ProfileError(msg) from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        detail = ' '.join(str(err).split())
        msg = f'{path}: not valid YAML: {detail}'
        raise ProfileError(msg) from err
    return RobotProfile.from_dict(data, source=str(path))


class _Parser:
    """Validation with messages of the form ``<file>: key <key>: <problem>``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ProfileError:
        return ProfileError(f'{self.source}: key {key}: {problem}')

    def mapping(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f'expected a mapping, got {value!r}')
        return value

    def unknown(self, value: Mapping[str, Any], allowed: set[str], key: str) -> None:
        extra = sorted(str(k) for k in value if k not in allowed)
        if extra:
            where = f'{key}.{extra[0]}' if key else extra[0]
            raise self.fail(where, f'unknown key (allowed: {", ".join(sorted(allowed))})')

    def text(self, value: Any, key: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.fail(key, f'expected a non-empty string, got {value!r}')
        return value

    def topic(self, value: Any, key: str) -> str:
        topic = self.text(value, key)
        if not topic.startswith('/') or any(c.isspace() for c in topic):
            raise self.fail(key, f'expected an absolute topic name like /joint_states, got '
                            f'{value!r}')
        return topic

    def names(self, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise self.fail(key, f'expected a non-empty list of names, got {value!r}')
        names = tuple(self.text(v, f'{key}[{i}]') for i, v in enumerate(value))
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise self.fail(key, f'duplicate names {dup}')
        return names

    def number(self, value: Any, key: str, *, positive: bool = True) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
            value
        ):
            raise self.fail(key, f'expected a number, got {value!r}')
        if positive and value <= 0:
            raise self.fail(key, f'must be > 0, got {value!r}')
        return float(value)

    def integer(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f'expected a positive integer, got {value!r}')
        return value

    def profile(self, d: Any) -> RobotProfile:
        d = self.mapping(d, '(top level)')
        self.unknown(d, _TOP_KEYS, '')
        for key in _REQUIRED:
            if key not in d:
                raise self.fail(key, 'missing (required)')
        robot = self.text(d['robot'], 'robot')
        if not all(c.isalnum() or c in '_-.' for c in robot):
            raise self.fail('robot', f'use letters, digits, _ - . only, got {robot!r}')
        joints = self.names(d['joints'], 'joints')
        rate = self.number(d['rate_hz'], 'rate_hz')
        lower, upper = self.limits(d['joint_limits'], len(joints))
        cameras = self.cameras(d.get('cameras') or {})
        size = self.image_size(d.get('image_size'), bool(cameras))
        task = d.get('task')
        task_topic = d.get('task_topic')
        return RobotProfile(
            robot=robot,
            joints=joints,
            state_topic=self.topic(d['state_topic'], 'state_topic'),
            action=self.action(d['action'], joints),
            cameras=cameras,
            image_size=size,
            rate_hz=rate,
            joint_lower=lower,
            joint_upper=upper,
            task='' if task is None else self.text(task, 'task', empty=True),
            task_topic=None if task_topic is None else self.topic(task_topic, 'task_topic'),
            extra_state=self.extra_state(d.get('extra_state') or [], joints),
            episodes=self.episodes(d.get('episodes') or {}),
            image_tolerance_s=self.number(d.get('image_tolerance_s', 0.2), 'image_tolerance_s'),
            chunk_length=self.integer(d.get('chunk_length', 16), 'chunk_length'),
            source=self.source,
        )

    def limits(self, value: Any, n: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        value = self.mapping(value, 'joint_limits')
        self.unknown(value, {'lower', 'upper'}, 'joint_limits')
        out = []
        for side in ('lower', 'upper'):
            key = f'joint_limits.{side}'
            got = value.get(side)
            if not isinstance(got, Sequence) or isinstance(got, str) or len(got) != n:
                raise self.fail(key, f'expected a list of {n} numbers (one per joint), got '
                                f'{got!r}')
            out.append(tuple(
                self.number(v, f'{key}[{i}]', positive=False) for i, v in enumerate(got)
            ))
        bad = [i for i, (lo, hi) in enumerate(zip(*out)) if lo > hi]
        if bad:
            raise self.fail(f'joint_limits.lower[{bad[0]}]', 'greater than the upper limit')
        return out[0], out[1]

    def action(self, value: Any, joints: tuple[str, ...]) -> ActionSpec:
        value = self.mapping(value, 'action')
        self.unknown(value, {'source', 'topic', 'names'}, 'action')
        raw = value.get('source')
        try:
            source = ActionSource(raw)
        except ValueError:
            raise self.fail(
                'action.source', f'expected command or next_state, got {raw!r}'
            ) from None
        names = (
            self.names(value['names'], 'action.names') if value.get('names') is not None
            else joints
        )
        topic = value.get('topic')
        if source is ActionSource.COMMAND:
            if topic is None:
                raise self.fail('action.topic', 'required when action.source is command')
            return ActionSpec(source, self.topic(topic, 'action.topic'), names)
        if topic is not None:
            raise self.fail('action.topic', 'not used with action.source next_state; remove it')
        if names != joints:
            raise self.fail('action.names', 'next_state actions are the joints; remove it')
        return ActionSpec(source, None, names)

    def cameras(self, value: Any) -> tuple[CameraSpec, ...]:
        value = self.mapping(value, 'cameras')
        out = []
        for role, spec in value.items():
            key = f'cameras.{role}'
            if not isinstance(role, str) or not role.isidentifier():
                raise self.fail(key, 'a camera role must be an identifier like wrist or front')
            spec = self.mapping(spec, key)
            self.unknown(spec, {'topic', 'depth'}, key)
            if 'topic' not in spec:
                raise self.fail(f'{key}.topic', 'missing (required)')
            depth = spec.get('depth', False)
            if not isinstance(depth, bool):
                raise self.fail(f'{key}.depth', f'expected true or false, got {depth!r}')
            out.append(CameraSpec(role, self.topic(spec['topic'], f'{key}.topic'), depth))
        return tuple(sorted(out, key=lambda c: c.role))

    def image_size(self, value: Any, needed: bool) -> tuple[int, int]:
        if value is None:
            if needed:
                raise self.fail('image_size', 'missing (required when cameras are set)')
            return (0, 0)
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
            raise self.fail('image_size', f'expected [H, W], got {value!r}')
        h = self.integer(value[0], 'image_size[0]')
        w = self.integer(value[1], 'image_size[1]')
        return (h, w)

    def extra_state(self, value: Any, joints: tuple[str, ...]) -> tuple[ExtraStateSpec, ...]:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise self.fail('extra_state', f'expected a list, got {value!r}')
        out: list[ExtraStateSpec] = []
        for i, item in enumerate(value):
            key = f'extra_state[{i}]'
            item = self.mapping(item, key)
            self.unknown(item, {'topic', 'type', 'name', 'joints'}, key)
            topic = self.topic(item.get('topic'), f'{key}.topic')
            msgtype = normalize_msgtype(self.text(item.get('type'), f'{key}.type'))
            if msgtype not in EXTRA_STATE_TYPES:
                raise self.fail(f'{key}.type', f'unsupported type {msgtype!r} (supported: '
                                f'{", ".join(sorted(EXTRA_STATE_TYPES))})')
            default = topic.strip('/').replace('/', '_') or 'extra'
            name = self.text(item.get('name', default), f'{key}.name')
            if any(e.name == name for e in out):
                raise self.fail(f'{key}.name', f'duplicate name {name!r}; set distinct names')
            extra_joints: tuple[str, ...] = ()
            if msgtype == 'sensor_msgs/msg/JointState':
                extra_joints = self.names(item.get('joints'), f'{key}.joints')
                taken = sorted(set(extra_joints) & set(joints).union(
                    *(e.joints for e in out)))
                if taken:
                    raise self.fail(f'{key}.joints', f'{taken} already in the state')
            elif 'joints' in item:
                raise self.fail(f'{key}.joints', 'only for sensor_msgs/msg/JointState')
            out.append(ExtraStateSpec(topic, msgtype, name, extra_joints))
        return tuple(out)

    def episodes(self, value: Any) -> EpisodeSpec:
        value = self.mapping(value, 'episodes')
        self.unknown(value, {'marker_topic', 'max_gap_s'}, 'episodes')
        marker = value.get('marker_topic')
        return EpisodeSpec(
            marker_topic=None if marker is None else self.topic(marker, 'episodes.marker_topic'),
            max_gap_s=self.number(value.get('max_gap_s', 1.0), 'episodes.max_gap_s'),
        )
