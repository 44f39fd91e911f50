"""LeRobot profiles: which features of a LeRobot dataset are a robot's state, action and cameras.

A LeRobot profile is a small YAML file (``format: lerobot``) or is derived from ``info.json``::

    format: lerobot
    robot: g1_inspire                 # embodiment id in the ptr dataset
    state: [observation.state]        # feature keys, concatenated in this order
    action: action
    cameras: {cam_high: observation.images.cam_high}     # role -> image/video feature key
    image_size: [96, 96]              # [H, W] frames are decoded at
    task: null                        # overrides the dataset's task text when set
    min_episode_steps: 16             # shorter episodes are skipped
    joint_limits: {lower: [...], upper: [...]}   # default: the data's min/max per state dim
    depth: []                         # roles whose frames are depth (uint16 mm)

The ptr dataset records the robot as an ordinary ``RobotProfile`` (``to_robot_profile``): its
joints are the state names, and its ROS topics are the conventional ``/joint_states``,
``/joint_command`` and ``/<role>/image_raw`` (what the policy node subscribes to when this robot
is served; write a bag profile for the real robot's topics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bag_tools.errors import ProfileError
from bag_tools.fileio import read_yaml
from bag_tools.lerobot.format import MAX_IMAGE_SIDE, role_of_key, shown
from bag_tools.profile import OLD_MIN_STEPS_KEY, RobotProfile, min_episode_steps_key

__all__ = [
    'DERIVED_IMAGE_SIZE',
    'LeRobotCamera',
    'LeRobotProfile',
    'derive_profile',
    'is_lerobot_profile_file',
    'load_lerobot_profile',
]

#: Image size of a profile derived from ``info.json``.
DERIVED_IMAGE_SIZE = (96, 96)
_KEYS = {'format', 'robot', 'state', 'action', 'cameras', 'image_size', 'task',
         'min_episode_steps', OLD_MIN_STEPS_KEY, 'joint_limits', 'depth'}


@dataclass(frozen=True)
class LeRobotCamera:
    role: str
    key: str  # the image/video feature
    depth: bool = False


@dataclass(frozen=True)
class LeRobotProfile:
    """Feature keys -> a ptr robot (see the module docstring)."""

    robot: str
    state: tuple[str, ...]
    action: str
    cameras: tuple[LeRobotCamera, ...] = ()
    image_size: tuple[int, int] = DERIVED_IMAGE_SIZE
    task: str | None = None
    min_episode_steps: int = 16  # shorter episodes are skipped
    joint_limits: tuple[tuple[float, ...], tuple[float, ...]] | None = None
    source: str = '<derived>'

    def __post_init__(self) -> None:
        where = self.source
        if not self.robot or not all(c.isalnum() or c in '_-.' for c in self.robot):
            msg = f'{where}: key robot: use letters, digits, _ - . only, got {self.robot!r}'
            raise ProfileError(msg)
        if not self.state or not all(isinstance(k, str) and k for k in self.state):
            msg = f'{where}: key state: expected a non-empty list of feature keys'
            raise ProfileError(msg)
        if not isinstance(self.action, str) or not self.action:
            msg = f'{where}: key action: expected a feature key, got {self.action!r}'
            raise ProfileError(msg)
        roles = [c.role for c in self.cameras]
        for cam in self.cameras:
            if not cam.role.isidentifier():
                msg = f'{where}: key cameras.{cam.role}: a role must be an identifier'
                raise ProfileError(msg)
        if len(set(roles)) != len(roles):
            msg = f'{where}: key cameras: duplicate roles {roles}'
            raise ProfileError(msg)
        h, w = self.image_size
        if self.cameras and not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
            msg = (f'{where}: key image_size: expected [H, W] in 1..{MAX_IMAGE_SIDE}, got '
                   f'{list(self.image_size)}')
            raise ProfileError(msg)
        if self.min_episode_steps < 1:
            msg = f'{where}: key min_episode_steps: expected a positive integer'
            raise ProfileError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {
            'format': 'lerobot',
            'robot': self.robot,
            'state': list(self.state),
            'action': self.action,
            'cameras': {c.role: c.key for c in self.cameras},
            'depth': [c.role for c in self.cameras if c.depth],
            'image_size': list(self.image_size),
            'task': self.task,
            'min_episode_steps': self.min_episode_steps,
            'joint_limits': None if self.joint_limits is None else {
                'lower': list(self.joint_limits[0]), 'upper': list(self.joint_limits[1])},
        }

    def to_robot_profile(
        self,
        *,
        state_names: Sequence[str],
        action_names: Sequence[str],
        rate_hz: float,
        limits: tuple[Sequence[float], Sequence[float]],
        task: str = '',
    ) -> RobotProfile:
        """The ``RobotProfile`` the ptr dataset records for this robot (conventional topics)."""
        lower, upper = self.joint_limits or limits
        return RobotProfile.from_dict({
            'robot': self.robot,
            'joints': list(state_names),
            'state_topic': '/joint_states',
            'action': {'source': 'command', 'topic': '/joint_command',
                       'names': list(action_names)},
            'cameras': {c.role: {'topic': f'/{c.role}/image_raw', 'depth': c.depth}
                        for c in self.cameras},
            'image_size': list(self.image_size) if self.cameras else None,
            'rate_hz': float(rate_hz),
            'joint_limits': {'lower': [float(x) for x in lower],
                             'upper': [float(x) for x in upper]},
            'task': task,
            'min_episode_steps': self.min_episode_steps,
        }, source=f'{self.source} (LeRobot)')


def _robot_id(text: str) -> str:
    robot = re.sub(r'[^A-Za-z0-9_.-]+', '_', text).strip('_.-').lower()
    return robot or 'lerobot'


def derive_profile(info: Mapping[str, Any], *, source: str) -> LeRobotProfile:
    """The profile ``info.json`` implies: ``observation.state``, ``action``, every image/video
    feature as a camera (role from its key), ``robot_type`` as the robot id."""
    features: Mapping[str, Any] = info['features']
    for key in ('observation.state', 'action'):
        if key not in features:
            msg = (f'{source}: meta/info.json has no {key!r} feature; give --profile with '
                   'state/action keys (see docs/lerobot.md)')
            raise ProfileError(msg)
    cameras = tuple(
        LeRobotCamera(role_of_key(k), k, bool((f.get('info') or {}).get('video.is_depth_map')
                                              or (f.get('info') or {}).get('is_depth_map')))
        for k, f in sorted(features.items()) if f.get('dtype') in ('video', 'image')
    )
    return LeRobotProfile(
        robot=_robot_id(str(info.get('robot_type') or 'lerobot')),
        state=('observation.state',),
        action='action',
        cameras=cameras,
        source=f'{source}/meta/info.json',
    )


def is_lerobot_profile_file(path: str | Path) -> bool:
    """Whether a YAML file is a LeRobot profile (``format: lerobot``)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(data, Mapping) and data.get('format') == 'lerobot'


def _fail(source: str, key: str, problem: str) -> ProfileError:
    return ProfileError(f'{source}: key {key}: {problem}')


def load_lerobot_profile(path: str | Path) -> LeRobotProfile:
    """Load and validate a LeRobot profile YAML; errors name the file and key."""
    path = Path(path)
    src = str(path)
    data = read_yaml(path, 'LeRobot profile', want=None, error=ProfileError)
    if not isinstance(data, Mapping) or data.get('format') != 'lerobot':
        raise _fail(src, 'format', 'expected `format: lerobot`')
    extra = sorted(str(k) for k in data if k not in _KEYS)
    if extra:
        raise _fail(src, extra[0], f'unknown key (allowed: {", ".join(sorted(_KEYS))})')
    for key in ('robot', 'state', 'action'):
        if key not in data:
            raise _fail(src, key, 'missing (required)')
    state = data['state']
    state = [state] if isinstance(state, str) else state
    if not isinstance(state, list) or not all(isinstance(s, str) for s in state):
        raise _fail(src, 'state', f'expected a feature key or a list of keys, got {state!r}')
    cameras_raw = data.get('cameras') or {}
    if not isinstance(cameras_raw, Mapping):
        raise _fail(src, 'cameras', f'expected a mapping role -> feature key, got {cameras_raw!r}')
    depth = data.get('depth') or []
    if (not isinstance(depth, list) or not all(isinstance(d, str) for d in depth)
            or not set(depth) <= set(cameras_raw)):
        raise _fail(src, 'depth', f'expected a list of camera roles, got {depth!r}')
    size = data.get('image_size', list(DERIVED_IMAGE_SIZE))
    if (not isinstance(size, list) or len(size) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_IMAGE_SIDE
            for v in size)):
        raise _fail(src, 'image_size',
                    f'expected [H, W] integers in 1..{MAX_IMAGE_SIDE}, got {shown(size)}')
    steps_key = min_episode_steps_key(data, src)
    steps = data.get(steps_key, 16)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise _fail(src, steps_key, f'expected a positive integer, got {steps!r}')
    task = data.get('task')
    if task is not None and not isinstance(task, str):
        raise _fail(src, 'task', f'expected a string, got {task!r}')
    return LeRobotProfile(
        robot=str(data['robot']),
        state=tuple(state),
        action=str(data['action']),
        cameras=tuple(LeRobotCamera(str(r), str(k), r in depth)
                      for r, k in sorted(cameras_raw.items(), key=lambda rk: str(rk[0]))),
        image_size=(size[0], size[1]),
        task=task,
        min_episode_steps=steps,
        joint_limits=_limits(src, data.get('joint_limits')),
        source=src,
    )


def _limits(src: str, value: Any) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {'lower', 'upper'}:
        raise _fail(src, 'joint_limits', 'expected {lower: [...], upper: [...]}')
    out = []
    for side in ('lower', 'upper'):
        got = value[side]
        if not isinstance(got, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in got):
            raise _fail(src, f'joint_limits.{side}', f'expected a list of numbers, got {got!r}')
        out.append(tuple(float(v) for v in got))
    if len(out[0]) != len(out[1]):
        raise _fail(src, 'joint_limits', 'lower and upper differ in length')
    return out[0], out[1]
