"""Robot profiles: what a robot's bags hold and how they become state, action and images.

A profile is a YAML file (``config/robots/<name>.yaml``) validated on load; every error is a
``ProfileError`` naming the file and the key. ``RobotProfile.to_dict()`` is the resolved profile
(every default filled in); it is stored in the dataset manifest and in checkpoints, and
``RobotProfile.from_dict`` rebuilds it on the robot.

A robot is one or more *arm groups* (arms, grippers, hands), each with its own state topic, joint
names, action source and joint limits. A single-arm profile (top-level ``joints``/``state_topic``/
``action``/``joint_limits``) is one unnamed group whose dimensions keep the joint names; an
``arms:`` mapping names its groups, and their dimensions are ``<group>/<joint>`` in the order the
groups are listed (state: every group's joints, then ``extra_state``; action: every group's
action, then ``extra_action``).
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from bag_tools.errors import ProfileError
from bag_tools.fileio import read_yaml

log = logging.getLogger(__name__)

__all__ = [
    'COMMAND_TYPES',
    'CONTROLLER_STATE',
    'EXTRA_STATE_TYPES',
    'MAX_RATE_HZ',
    'OLD_MIN_STEPS_KEY',
    'STATE_TYPES',
    'VIDEO_SUFFIXES',
    'ActionSource',
    'ActionSpec',
    'ArmSpec',
    'CameraSpec',
    'EpisodeSpec',
    'ExtraStateSpec',
    'RobotProfile',
    'load_profile',
    'min_episode_steps_key',
    'normalize_msgtype',
]

#: ``control_msgs/JointTrajectoryControllerState`` (ros_control / ros2_control JTC state).
CONTROLLER_STATE = 'control_msgs/msg/JointTrajectoryControllerState'

#: Message types a state topic may carry.
STATE_TYPES = ('sensor_msgs/msg/JointState', CONTROLLER_STATE)

#: Command message types an ``action.topic`` may carry.
COMMAND_TYPES = (
    'trajectory_msgs/msg/JointTrajectory',
    'std_msgs/msg/Float64MultiArray',
    'sensor_msgs/msg/JointState',
    CONTROLLER_STATE,
)

#: Fields of a controller state a state (``state_field``) or an action (``action.field``) reads;
#: ``auto`` takes the first non-empty one of the field set the bag's distro has.
STATE_FIELDS = ('auto', 'actual', 'feedback')
ACTION_FIELDS = ('auto', 'desired', 'reference', 'output')

#: Video files a camera role may read beside the bag (decoded with PyAV).
VIDEO_SUFFIXES = ('.mp4', '.mkv', '.webm', '.mov', '.avi')
#: What a camera's ``file:`` may name in braces: the bag's stem (``bag_stem``).
VIDEO_PLACEHOLDERS = ('bag_stem',)


def _extra_types() -> dict[str, tuple[str, ...]]:
    from bag_tools.extras import registered

    return {name: kind.dims for name, kind in sorted(registered().items())}


#: The highest grid rate a profile may ask for (1 kHz: the fastest arm controllers' rate).
MAX_RATE_HZ = 1000.0

#: Extra observation types and the names of their dimensions (from ``bag_tools.extras``).
EXTRA_STATE_TYPES: dict[str, tuple[str, ...]] = _extra_types()

#: The old name of ``min_episode_steps`` (it is not the policy's chunk length ``L``, which the
#: training config's ``policy.chunk_length`` sets); still read, with a warning.
OLD_MIN_STEPS_KEY = 'chunk_length'
_warned_old_key: set[str] = set()
_ARM_KEYS = ('joints', 'state_topic', 'state_field', 'action', 'joint_limits')
_TOP_KEYS = {
    'robot', 'arms', 'cameras', 'image_size', 'rate_hz', 'task', 'task_topic', 'extra_state',
    'extra_action', 'episodes', 'image_tolerance_s', 'min_episode_steps', OLD_MIN_STEPS_KEY,
    *_ARM_KEYS,
}
_REQUIRED = ('robot', 'rate_hz')
_ARM_REQUIRED = ('joints', 'state_topic', 'action', 'joint_limits')


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
    names: tuple[str, ...]  # as the command messages name them
    field: str = 'auto'  # controller-state commands: which point (ACTION_FIELDS)
    lower: tuple[float, ...] = ()  # command limits per name (``action.limits``); () = none given
    upper: tuple[float, ...] = ()


@dataclass(frozen=True)
class ArmSpec:
    """One arm group: its state topic, joints, action and limits. ``name`` '' = single arm."""

    name: str
    joints: tuple[str, ...]  # as the messages name them
    state_topic: str
    action: ActionSpec
    joint_lower: tuple[float, ...]
    joint_upper: tuple[float, ...]
    state_field: str = 'auto'  # controller-state state topics: which point (STATE_FIELDS)

    def dim(self, joint: str) -> str:
        return f'{self.name}/{joint}' if self.name else joint

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(self.dim(j) for j in self.joints)

    @property
    def action_dim_names(self) -> tuple[str, ...]:
        return tuple(self.dim(n) for n in self.action.names)


@dataclass(frozen=True)
class CameraSpec:
    role: str
    topic: str | None  # the image topic (in the bag, and live); None for a bag's video only
    depth: bool = False
    file: str | None = None  # a video file beside the bag (relative to the bag's folder)
    stamps_topic: str | None = None  # one message per video frame; its stamps time the frames
    offset_s: float = 0.0  # video without stamps: frame time = bag start + offset + pts

    @property
    def is_video(self) -> bool:
        return self.file is not None


@dataclass(frozen=True)
class ExtraStateSpec:
    topic: str
    type: str
    name: str  # prefix of the dimension names
    joints: tuple[str, ...] = ()  # JointState only: its joints, in order (the dimension names)
    parent: str = ''  # TF only: the pose of ``child`` in ``parent``
    child: str = ''
    lower: tuple[float, ...] = ()  # extra_action only: command limits per dimension (``limits``)
    upper: tuple[float, ...] = ()

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
    min_episode_steps: int = 16  # ingest drops episode segments with fewer grid steps
    arms: tuple[ArmSpec, ...] = ()  # filled by the parser; one unnamed group for a single arm
    extra_action: tuple[ExtraStateSpec, ...] = ()  # e.g. a base's cmd_vel, after the arms
    source: str = field(default='<dict>', compare=False)  # where it was loaded from (messages)

    # -- derived ---------------------------------------------------------------------------
    @property
    def groups(self) -> tuple[ArmSpec, ...]:
        """The arm groups (a profile built without ``arms`` is one unnamed group)."""
        if self.arms:
            return self.arms
        if not self.joints:  # a base-only profile: state and action are extras
            return ()
        return (ArmSpec('', self.joints, self.state_topic, self.action, self.joint_lower,
                        self.joint_upper),)

    @property
    def multi_arm(self) -> bool:
        return bool(self.arms) and bool(self.arms[0].name)

    @property
    def state_names(self) -> list[str]:
        names = list(self.joints)
        for extra in self.extra_state:
            names += extra.dim_names
        return names

    @property
    def action_names(self) -> list[str]:
        names = [n for g in self.groups for n in g.action_dim_names]
        for extra in self.extra_action:
            names += extra.dim_names
        return names

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
        topics: list[str] = []
        for g in self.groups:
            topics.append(g.state_topic)
            if g.action.topic:
                topics.append(g.action.topic)
        for c in self.cameras:
            if c.is_video:
                if c.stamps_topic:
                    topics.append(c.stamps_topic)
            elif c.topic:
                topics.append(c.topic)
        topics += [e.topic for e in self.extra_state]
        topics += [e.topic for e in self.extra_action]
        if self.task_topic:
            topics.append(self.task_topic)
        if self.episodes.marker_topic:
            topics.append(self.episodes.marker_topic)
        return list(dict.fromkeys(topics))

    # -- (de)serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The resolved profile, in the YAML schema, every default filled in."""
        out: dict[str, Any] = {'robot': self.robot}
        if self.multi_arm:
            out['arms'] = {g.name: _arm_dict(g) for g in self.groups}
        elif self.groups:
            out.update(_arm_dict(self.groups[0]))
        out.update({
            'cameras': {c.role: _camera_dict(c) for c in self.cameras},
            'image_size': list(self.image_size) if self.cameras else None,
            'rate_hz': self.rate_hz,
            'task': self.task,
            'task_topic': self.task_topic,
            'extra_state': [_extra_dict(e) for e in self.extra_state],
            'episodes': {
                'marker_topic': self.episodes.marker_topic,
                'max_gap_s': self.episodes.max_gap_s,
            },
            'image_tolerance_s': self.image_tolerance_s,
            'min_episode_steps': self.min_episode_steps,
        })
        if self.extra_action:
            out['extra_action'] = [_extra_dict(e) for e in self.extra_action]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = '<dict>') -> RobotProfile:
        """Validate a profile mapping; raise ``ProfileError`` naming ``source`` and the key."""
        return _Parser(source).profile(d)


def _arm_dict(g: ArmSpec) -> dict[str, Any]:
    action: dict[str, Any] = {'source': g.action.source.value}
    if g.action.topic:
        action['topic'] = g.action.topic
        action['names'] = list(g.action.names)
        if g.action.field != 'auto':
            action['field'] = g.action.field
    if g.action.lower:
        action['limits'] = {'lower': list(g.action.lower), 'upper': list(g.action.upper)}
    out: dict[str, Any] = {
        'joints': list(g.joints),
        'state_topic': g.state_topic,
        'action': action,
        'joint_limits': {'lower': list(g.joint_lower), 'upper': list(g.joint_upper)},
    }
    if g.state_field != 'auto':
        out['state_field'] = g.state_field
    return out


def _camera_dict(c: CameraSpec) -> dict[str, Any]:
    if not c.is_video:
        return {'topic': c.topic, 'depth': c.depth}
    out: dict[str, Any] = {'file': c.file, 'depth': c.depth, 'offset_s': c.offset_s}
    if c.topic:
        out['topic'] = c.topic
    if c.stamps_topic:
        out['stamps_topic'] = c.stamps_topic
    return out


def _extra_dict(e: ExtraStateSpec) -> dict[str, Any]:
    out: dict[str, Any] = {'topic': e.topic, 'type': e.type, 'name': e.name}
    if e.joints:
        out['joints'] = list(e.joints)
    if e.parent:
        out.update(parent=e.parent, child=e.child)
    if e.lower:
        out['limits'] = {'lower': list(e.lower), 'upper': list(e.upper)}
    return out


def load_profile(path: str | Path) -> RobotProfile:
    """Load and validate ``config/robots/<name>.yaml``."""
    data = read_yaml(path, 'robot profile', want=None, error=ProfileError)
    return RobotProfile.from_dict(data, source=str(path))


def min_episode_steps_key(d: Mapping[str, Any], source: str) -> str:
    """The key a profile mapping gives ``min_episode_steps`` under: ``min_episode_steps`` or,
    in a profile written before the rename, ``chunk_length`` (logged once per ``source``).

    Raises ``ProfileError`` when both are set.
    """
    if OLD_MIN_STEPS_KEY not in d:
        return 'min_episode_steps'
    if 'min_episode_steps' in d:
        msg = (f'{source}: keys {OLD_MIN_STEPS_KEY} and min_episode_steps: both set; '
               f'{OLD_MIN_STEPS_KEY} is the old name of min_episode_steps, keep only '
               'min_episode_steps')
        raise ProfileError(msg)
    if source not in _warned_old_key:
        _warned_old_key.add(source)
        log.warning('%s: key %s was renamed to min_episode_steps (the fewest grid steps an '
                    "episode keeps; the policy's chunk length is the training config's "
                    'policy.chunk_length); read as min_episode_steps', source, OLD_MIN_STEPS_KEY)
    return OLD_MIN_STEPS_KEY


class _Fields:
    """One value checked against its key, with messages of the form
    ``<file>: key <key>: <problem>``."""

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

    def limits(
        self, value: Any, n: int, key: str = 'joint_limits', per: str = 'joint'
    ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        value = self.mapping(value, key)
        self.unknown(value, {'lower', 'upper'}, key)
        out = []
        for side in ('lower', 'upper'):
            skey = f'{key}.{side}'
            got = value.get(side)
            if not isinstance(got, Sequence) or isinstance(got, str) or len(got) != n:
                raise self.fail(skey, f'expected a list of {n} numbers (one per {per}), got '
                                f'{got!r}')
            out.append(tuple(
                self.number(v, f'{skey}[{i}]', positive=False) for i, v in enumerate(got)
            ))
        bad = [i for i, (lo, hi) in enumerate(zip(*out)) if lo > hi]
        if bad:
            raise self.fail(f'{key}.lower[{bad[0]}]', 'greater than the upper limit')
        return out[0], out[1]

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


class _Parser(_Fields):
    """The profile's structure: arm groups, actions, cameras, extra observations and
    episodes, each value checked by ``_Fields``."""

    def profile(self, d: Any) -> RobotProfile:
        d = self.mapping(d, '(top level)')
        self.unknown(d, _TOP_KEYS, '')
        for key in _REQUIRED:
            if key not in d:
                raise self.fail(key, 'missing (required)')
        robot = self.text(d['robot'], 'robot')
        if not all(c.isalnum() or c in '_-.' for c in robot):
            raise self.fail('robot', f'use letters, digits, _ - . only, got {robot!r}')
        arms = self.arms(d)
        joints = tuple(n for g in arms for n in g.dim_names)
        rate = self.number(d['rate_hz'], 'rate_hz')
        if rate > MAX_RATE_HZ:  # the grid is allocated per step: 1e9 Hz filled 21 GB
            raise self.fail('rate_hz', f'{rate:g} Hz is above the {MAX_RATE_HZ:g} Hz this '
                            f'tool records at')
        cameras = self.cameras(d.get('cameras') or {})
        size = self.image_size(d.get('image_size'), bool(cameras))
        task = d.get('task')
        task_topic = d.get('task_topic')
        extra_state = self.extra_state(d.get('extra_state') or [], joints, 'extra_state')
        extra_action = self.extra_state(d.get('extra_action') or [], (), 'extra_action')
        if not arms:  # base-only: the first extra state times the episode
            state_topic = extra_state[0].topic
            action = ActionSpec(ActionSource.COMMAND, extra_action[0].topic, ())
        elif len(arms) == 1:
            state_topic, action = arms[0].state_topic, arms[0].action
        else:
            state_topic = arms[0].state_topic
            sources = {g.action.source for g in arms}
            action = ActionSpec(sources.pop() if len(sources) == 1 else ActionSource.COMMAND,
                                None, tuple(n for g in arms for n in g.action_dim_names))
        steps_key = min_episode_steps_key(d, self.source)
        return RobotProfile(
            robot=robot,
            joints=joints,
            state_topic=state_topic,
            action=action,
            cameras=cameras,
            image_size=size,
            rate_hz=rate,
            joint_lower=tuple(v for g in arms for v in g.joint_lower),
            joint_upper=tuple(v for g in arms for v in g.joint_upper),
            task='' if task is None else self.text(task, 'task', empty=True),
            task_topic=None if task_topic is None else self.topic(task_topic, 'task_topic'),
            extra_state=extra_state,
            episodes=self.episodes(d.get('episodes') or {}),
            image_tolerance_s=self.number(d.get('image_tolerance_s', 0.2), 'image_tolerance_s'),
            min_episode_steps=self.integer(d.get(steps_key, 16), steps_key),
            arms=arms,
            extra_action=extra_action,
            source=self.source,
        )

    def arms(self, d: Mapping[str, Any]) -> tuple[ArmSpec, ...]:
        """The arm groups; none for a base-only profile (no arm key, an ``extra_state`` for
        the state and an ``extra_action`` for the action)."""
        if 'arms' not in d and not any(k in d for k in _ARM_KEYS):
            for key in ('extra_state', 'extra_action'):
                if not d.get(key):
                    raise self.fail('joints', f'missing (required; a base-only profile without '
                                    f'joints needs extra_state and extra_action, {key} is '
                                    'empty)')
            return ()
        if 'arms' not in d:
            return (self.arm(d, '', ''),)
        both = sorted(k for k in _ARM_KEYS if k in d)
        if both:
            raise self.fail(both[0], 'set per arm group under arms.<group>, not at the top level '
                            'when arms is set')
        value = self.mapping(d['arms'], 'arms')
        if not value:
            raise self.fail('arms', 'expected at least one arm group')
        out: list[ArmSpec] = []
        for name, spec in value.items():
            key = f'arms.{name}'
            if not isinstance(name, str) or not name.isidentifier():
                raise self.fail(key, 'an arm group name must be an identifier like left or '
                                'right_gripper')
            spec = self.mapping(spec, key)
            self.unknown(spec, set(_ARM_KEYS), key)
            arm = self.arm(spec, name, f'{key}.')
            for other in out:  # one topic's joint read into two groups: the same data twice
                both = sorted(set(arm.joints) & set(other.joints))
                if other.state_topic == arm.state_topic and both:
                    raise self.fail(f'{key}.joints', f'{both} are also arms.{other.name}.joints '
                                    f'on the same state_topic {arm.state_topic}')
            out.append(arm)
        return tuple(out)

    def arm(self, d: Mapping[str, Any], name: str, prefix: str) -> ArmSpec:
        for key in _ARM_REQUIRED:
            if key not in d:
                raise self.fail(f'{prefix}{key}', 'missing (required)')
        joints = self.names(d['joints'], f'{prefix}joints')
        lower, upper = self.limits(d['joint_limits'], len(joints), f'{prefix}joint_limits')
        state_field = d.get('state_field', 'auto')
        if state_field not in STATE_FIELDS:
            raise self.fail(f'{prefix}state_field', f'expected one of {", ".join(STATE_FIELDS)} '
                            f'(controller-state topics), got {state_field!r}')
        return ArmSpec(
            name=name,
            joints=joints,
            state_topic=self.topic(d['state_topic'], f'{prefix}state_topic'),
            action=self.action(d['action'], joints, f'{prefix}action'),
            joint_lower=lower,
            joint_upper=upper,
            state_field=state_field,
        )

    def action(
        self, value: Any, joints: tuple[str, ...], key: str = 'action'
    ) -> ActionSpec:
        value = self.mapping(value, key)
        self.unknown(value, {'source', 'topic', 'names', 'field', 'limits'}, key)
        raw = value.get('source')
        try:
            source = ActionSource(raw)
        except ValueError:
            raise self.fail(
                f'{key}.source', f'expected command or next_state, got {raw!r}'
            ) from None
        names = (
            self.names(value['names'], f'{key}.names') if value.get('names') is not None
            else joints
        )
        topic = value.get('topic')
        fld = value.get('field', 'auto')
        if fld not in ACTION_FIELDS:
            raise self.fail(f'{key}.field', f'expected one of {", ".join(ACTION_FIELDS)} '
                            f'(controller-state topics), got {fld!r}')
        lower: tuple[float, ...] = ()
        upper: tuple[float, ...] = ()
        if value.get('limits') is not None:  # commands whose names are not joints need them
            lower, upper = self.limits(value['limits'], len(names), f'{key}.limits', 'name')
        if source is ActionSource.COMMAND:
            if topic is None:
                raise self.fail(f'{key}.topic', 'required when action.source is command')
            return ActionSpec(source, self.topic(topic, f'{key}.topic'), names, fld,
                              lower, upper)
        if topic is not None:
            raise self.fail(f'{key}.topic', 'not used with action.source next_state; remove it')
        if names != joints:
            raise self.fail(f'{key}.names', 'next_state actions are the joints; remove it')
        return ActionSpec(source, None, names, lower=lower, upper=upper)

    def cameras(self, value: Any) -> tuple[CameraSpec, ...]:
        value = self.mapping(value, 'cameras')
        out = []
        for role, spec in value.items():
            key = f'cameras.{role}'
            if not isinstance(role, str) or not role.isidentifier():
                raise self.fail(key, 'a camera role must be an identifier like wrist or front')
            spec = self.mapping(spec, key)
            self.unknown(spec, {'topic', 'depth', 'file', 'stamps_topic', 'offset_s'}, key)
            depth = spec.get('depth', False)
            if not isinstance(depth, bool):
                raise self.fail(f'{key}.depth', f'expected true or false, got {depth!r}')
            file = spec.get('file')
            if file is None:
                if 'topic' not in spec:
                    raise self.fail(f'{key}.topic', 'missing (required; or file: a video '
                                    'beside the bag)')
                for k in ('stamps_topic', 'offset_s'):
                    if k in spec:
                        raise self.fail(f'{key}.{k}', 'only for a video camera (file:)')
                out.append(CameraSpec(role, self.topic(spec['topic'], f'{key}.topic'), depth))
                continue
            file = self.video_file(file, f'{key}.file')
            if depth:
                raise self.fail(f'{key}.depth', 'a video camera is color only')
            stamps = spec.get('stamps_topic')
            out.append(CameraSpec(
                role,
                None if spec.get('topic') is None else self.topic(spec['topic'], f'{key}.topic'),
                False, file,
                None if stamps is None else self.topic(stamps, f'{key}.stamps_topic'),
                self.number(spec.get('offset_s', 0.0), f'{key}.offset_s', positive=False),
            ))
        return tuple(sorted(out, key=lambda c: c.role))

    def video_file(self, value: Any, key: str) -> str:
        """A video file name relative to the bag's folder; ``{bag_stem}`` stands for each
        bag's stem (``{bag_stem}/left.mp4``: ``0/left.mp4`` beside ``0.mcap``)."""
        file = self.text(value, key)
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(file) if f is not None}
        except ValueError as err:
            raise self.fail(key, f"{err} in {file!r} (write {{bag_stem}} for the bag's stem)"
                            ) from err
        unknown = sorted(fields - set(VIDEO_PLACEHOLDERS))
        if unknown:
            raise self.fail(key, f'unknown placeholder {{{unknown[0]}}} in {file!r} (allowed: '
                            f'{", ".join("{" + p + "}" for p in VIDEO_PLACEHOLDERS)})')
        if Path(file).suffix.lower() not in VIDEO_SUFFIXES or Path(file).is_absolute():
            raise self.fail(key, f'expected a video file name relative to the bag '
                            f'({", ".join(VIDEO_SUFFIXES)}), got {file!r}')
        return file

    def extra_state(
        self, value: Any, joints: tuple[str, ...], what: str
    ) -> tuple[ExtraStateSpec, ...]:
        from bag_tools.extras import extra_type, registered

        if not isinstance(value, Sequence) or isinstance(value, str):
            raise self.fail(what, f'expected a list, got {value!r}')
        action = what == 'extra_action'
        supported = sorted(n for n, k in registered().items() if k.action or not action)
        out: list[ExtraStateSpec] = []
        for i, item in enumerate(value):
            key = f'{what}[{i}]'
            item = self.mapping(item, key)
            allowed = {'topic', 'type', 'name', 'joints', 'parent', 'child'}
            self.unknown(item, allowed | ({'limits'} if action else set()), key)
            msgtype = normalize_msgtype(self.text(item.get('type'), f'{key}.type'))
            kind = extra_type(msgtype)
            if kind is None or msgtype not in supported:
                raise self.fail(f'{key}.type', f'unsupported type {msgtype!r} (supported: '
                                f'{", ".join(supported)})')
            raw_topic = item.get('topic', '/tf' if kind.frames else None)
            topic = self.topic(raw_topic, f'{key}.topic')
            default = topic.strip('/').replace('/', '_') or 'extra'
            name = self.text(item.get('name', default), f'{key}.name')
            if any(e.name == name for e in out):
                raise self.fail(f'{key}.name', f'duplicate name {name!r}; set distinct names')
            extra_joints: tuple[str, ...] = ()
            if kind.named:
                extra_joints = self.names(item.get('joints'), f'{key}.joints')
                taken = sorted(set(extra_joints) & set(joints).union(
                    *(e.joints for e in out)))
                if taken:
                    raise self.fail(f'{key}.joints', f'{taken} already in the state')
            elif 'joints' in item:
                raise self.fail(f'{key}.joints', 'only for sensor_msgs/msg/JointState')
            parent = child = ''
            if kind.frames:
                parent = self.text(item.get('parent'), f'{key}.parent')
                child = self.text(item.get('child'), f'{key}.child')
                if parent == child:
                    raise self.fail(f'{key}.child', f'same frame as parent ({parent!r})')
            else:
                for k in ('parent', 'child'):
                    if k in item:
                        raise self.fail(f'{key}.{k}', 'only for tf2_msgs/msg/TFMessage')
            spec = ExtraStateSpec(topic, msgtype, name, extra_joints, parent, child)
            if action and item.get('limits') is not None:
                lower, upper = self.limits(item['limits'], len(spec.dim_names),
                                           f'{key}.limits', 'dimension')
                spec = replace(spec, lower=lower, upper=upper)
            out.append(spec)
        return tuple(out)

    def episodes(self, value: Any) -> EpisodeSpec:
        value = self.mapping(value, 'episodes')
        self.unknown(value, {'marker_topic', 'max_gap_s'}, 'episodes')
        marker = value.get('marker_topic')
        return EpisodeSpec(
            marker_topic=None if marker is None else self.topic(marker, 'episodes.marker_topic'),
            max_gap_s=self.number(value.get('max_gap_s', 1.0), 'episodes.max_gap_s'),
        )
