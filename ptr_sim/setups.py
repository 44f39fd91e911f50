"""The Meta-World recording setups: which cameras, which state layout, which topics.

A real lab's data comes from several rigs. Every setup here drives the same simulated Sawyer
(Meta-World's arm is position-controlled at the end effector through a mocap weld, at 80 Hz), but
they publish different things, the way rigs with different drivers and trackers would. Setups
``a`` and ``b`` have a tracker (the state includes the object's and the goal's poses); setup
``c`` has cameras only:

* setup ``a`` (robot ``sawyer_mw_a``, profile ``config/robots/metaworld_a.yaml``): a
  ``JointState`` with the end-effector position as three prismatic axes ``ee_x, ee_y, ee_z``
  (metres, world frame) and the normalized gripper opening ``gripper_opening`` (0 closed, 1
  open); cameras ``corner`` (Meta-World's ``corner`` view) and ``wrist`` (``gripperPOV``); a
  position-only tracker publishing the object position, then the goal position
  (``geometry_msgs/PointStamped``).
* setup ``b`` (robot ``sawyer_mw_b``, profile ``config/robots/metaworld_b.yaml``): a
  ``JointState`` with the two finger joints first (``r_close``, ``l_close``: the MuJoCo finger
  slide joints, metres) and then ``ee_x, ee_y, ee_z``; one camera ``side`` (``corner3``); a
  motion-capture system publishing the goal pose, then the object pose
  (``geometry_msgs/PoseStamped``, orientation included).
* setup ``c`` (robot ``sawyer_mw_c``, profile ``config/robots/metaworld_c.yaml``): cameras
  only, the observations a real arm has: the arm's own ``JointState`` (``ee_x, ee_y, ee_z,
  gripper_opening`` as in setup a) and cameras ``corner`` and ``wrist``, and no tracker: the
  object's and the goal's poses are nowhere in the bag, so a policy must find both in the
  images. Meta-World draws the goal of ``push-v3`` (green) and ``pick-place-v3`` (blue) as a
  site sphere (2 cm radius, 1-2 pixels of the 64x64 ``corner`` view) beside the object; a
  task whose goal is not drawn cannot be learned from these images (check a rendered frame
  before using another task here).

All command the arm with ``std_msgs/Float64MultiArray``: Meta-World's 4-D action (end-effector
displacement ``dx, dy, dz`` scaled to [-1, 1], and the gripper effort in [-1, 1]). Positions
and poses are in the world frame (the goal has no orientation: identity). The task name (e.g.
``pick-place-v3``) is published once on ``/task``.

``state_values`` is the one place that maps simulator state onto these names; the recorder
publishes from it and the evaluation harness builds policy inputs from it, so the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = [
    'ACTION_NAMES',
    'CONTROL_RATE_HZ',
    'SETUPS',
    'SimCamera',
    'SimSetup',
    'get_setup',
    'pose_values',
    'profile_path',
    'state_values',
]

#: Meta-World steps MuJoCo 5 x 2.5 ms per action: 80 Hz control.
CONTROL_RATE_HZ = 80.0
ACTION_NAMES = ('ee_dx', 'ee_dy', 'ee_dz', 'gripper_effort')
CONFIG_DIR = Path(__file__).resolve().parents[1] / 'config' / 'robots'


@dataclass(frozen=True)
class SimCamera:
    role: str
    camera: str  # MuJoCo camera name in the Meta-World scene
    topic: str
    rotate180: bool = False  # Meta-World's corner cameras are mounted upside down


@dataclass(frozen=True)
class SimSetup:
    name: str
    robot: str
    joints: tuple[str, ...]
    state_topic: str
    command_topic: str
    cameras: tuple[SimCamera, ...]
    poses: tuple[tuple[str, str], ...]  # (name, topic) in the order the profile lists them
    pose_type: str = 'geometry_msgs/msg/PoseStamped'  # or PointStamped (position only)
    task_topic: str = '/task'
    frame_id: str = 'world'

    @property
    def cameras_only(self) -> bool:
        """No tracker: the state is the arm's own joints; object and goal are in the images."""
        return not self.poses

    @property
    def profile(self) -> Path:
        return profile_path(self.name)


SETUPS: dict[str, SimSetup] = {
    'a': SimSetup(
        name='a',
        robot='sawyer_mw_a',
        joints=('ee_x', 'ee_y', 'ee_z', 'gripper_opening'),
        state_topic='/joint_states',
        command_topic='/arm/ee_delta_command',
        cameras=(
            SimCamera('corner', 'corner', '/cameras/corner/image_raw/compressed', rotate180=True),
            SimCamera(
                'wrist', 'gripperPOV', '/cameras/wrist/image_raw/compressed', rotate180=True
            ),
        ),
        poses=(('object', '/tracker/object_position'), ('goal', '/tracker/goal_position')),
        pose_type='geometry_msgs/msg/PointStamped',
    ),
    'b': SimSetup(
        name='b',
        robot='sawyer_mw_b',
        joints=('r_close', 'l_close', 'ee_x', 'ee_y', 'ee_z'),
        state_topic='/sawyer/joint_states',
        command_topic='/sawyer/cartesian_delta',
        cameras=(SimCamera('side', 'corner3', '/side_cam/image/compressed'),),
        poses=(('goal', '/mocap/goal_pose'), ('object', '/mocap/object_pose')),
    ),
    'c': SimSetup(
        name='c',
        robot='sawyer_mw_c',
        joints=('ee_x', 'ee_y', 'ee_z', 'gripper_opening'),
        state_topic='/sawyer_c/joint_states',
        command_topic='/sawyer_c/ee_delta_command',
        cameras=(
            SimCamera('corner', 'corner', '/sawyer_c/corner/image_raw/compressed',
                      rotate180=True),
            SimCamera('wrist', 'gripperPOV', '/sawyer_c/wrist/image_raw/compressed',
                      rotate180=True),
        ),
        poses=(),
    ),
}


def get_setup(name: str) -> SimSetup:
    try:
        return SETUPS[name]
    except KeyError:
        msg = f'unknown recording setup {name!r} (known: {", ".join(sorted(SETUPS))})'
        raise PtrError(msg) from None


def profile_path(setup: str) -> Path:
    return CONFIG_DIR / f'metaworld_{setup}.yaml'


def pose_values(obs: npt.NDArray[Any]) -> dict[str, npt.NDArray[np.float64]]:
    """Object and goal poses ``[x, y, z, qx, qy, qz, qw]`` from a Meta-World observation.

    Meta-World's 39-D observation: hand xyz (0:3), gripper opening (3), first object xyz (4:7)
    and quaternion xyzw (7:11), second object (11:18), the previous frame's 18 values (18:36),
    goal xyz (36:39).
    """
    obs = np.asarray(obs, dtype=np.float64)
    obj = obs[4:11].copy()
    if not np.any(obj[3:]):
        obj[3:] = (0.0, 0.0, 0.0, 1.0)
    goal = np.concatenate([obs[36:39], [0.0, 0.0, 0.0, 1.0]])
    return {'object': obj, 'goal': goal}


def state_values(
    setup: SimSetup, obs: npt.NDArray[Any], fingers: npt.NDArray[Any]
) -> npt.NDArray[np.float64]:
    """The setup's ``JointState.position`` (in ``setup.joints`` order).

    ``fingers`` is ``[r_close, l_close]`` from the MuJoCo state (``data.qpos[7:9]``).
    """
    named = {
        'ee_x': obs[0], 'ee_y': obs[1], 'ee_z': obs[2], 'gripper_opening': obs[3],
        'r_close': fingers[0], 'l_close': fingers[1],
    }
    return np.array([named[j] for j in setup.joints], dtype=np.float64)


def flat_state(
    setup: SimSetup, obs: npt.NDArray[Any], fingers: npt.NDArray[Any]
) -> npt.NDArray[np.float32]:
    """The state vector ingestion builds from this setup's bag: joints, then each pose."""
    poses = pose_values(obs)
    width = 3 if setup.pose_type.endswith('PointStamped') else 7
    parts = [state_values(setup, obs, fingers)] + [poses[name][:width] for name, _ in setup.poses]
    return np.concatenate(parts).astype(np.float32)
