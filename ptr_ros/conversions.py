"""ROS message <-> numpy helpers that serving needs beyond ``bag_tools.observation``.

Decoding images, joint states and extra observations is *not* here: the node calls
``bag_tools.observation`` (the code ingestion uses), so training and serving see the same values.
This module resolves message classes by name and builds the command messages (``image_dims``,
the source size of an image read from its header, is re-exported from bag_tools).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from bag_tools.observation import image_dims  # re-exported: one header parser, in bag_tools
from bag_tools.profile import normalize_msgtype
from ptr_core.errors import PtrError

__all__ = ['forward_command', 'image_dims', 'message_class', 'trajectory_command',
           'twist_command']


def message_class(msgtype: str) -> Any:
    """The rclpy class of ``pkg/msg/Type`` (or ``pkg/Type``)."""
    name = normalize_msgtype(msgtype)
    pkg, kind, cls = name.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), cls)
    except (ImportError, AttributeError) as err:
        msg = f'message type {name} is not installed ({err}); install its ROS package'
        raise PtrError(msg) from err


def trajectory_command(
    names: Sequence[str], points: npt.NDArray[np.float64], dt: float, stamp: Any = None,
) -> JointTrajectory:
    """``points [N, D]``: point ``i`` is reached ``(i + 1) * dt`` after ``stamp`` (a
    ``builtin_interfaces/Time``: the control tick's planned time, so
    ``joint_trajectory_controller`` places the points where they were planned however late the
    message arrives); without ``stamp`` (0) the controller starts the trajectory on receipt."""
    msg = JointTrajectory()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.joint_names = list(names)
    for i, row in enumerate(points):
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in row]
        t = (i + 1) * dt
        sec = int(t)
        point.time_from_start = Duration(sec=sec, nanosec=round((t - sec) * 1e9) % 10**9)
        msg.points.append(point)
    return msg


def forward_command(names: Sequence[str], values: npt.NDArray[np.float64]) -> Float64MultiArray:
    """One value per joint, in ``names`` order (``forward_position_controller``'s layout)."""
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label='joints', size=len(names), stride=len(names))]
    msg.data = [float(v) for v in values]
    return msg


def twist_command(cls: Any, values: Sequence[float] | npt.NDArray[np.float64], stamp: Any = None,
                  ) -> Any:
    """A ``cls`` (Twist or TwistStamped) message of six values: linear xyz, angular xyz;
    ``stamp`` goes into a TwistStamped's header."""
    v = [float(x) for x in values]
    twist = cls()
    body = twist.twist if hasattr(twist, 'header') else twist
    if hasattr(twist, 'header'):
        twist.header.stamp = stamp
    body.linear.x, body.linear.y, body.linear.z = v[0], v[1], v[2]
    body.angular.x, body.angular.y, body.angular.z = v[3], v[4], v[5]
    return twist
