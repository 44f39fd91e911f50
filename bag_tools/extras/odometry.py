"""nav_msgs/Odometry: the base pose (7, quaternion last) then its twist (6)."""

from __future__ import annotations

from typing import Any

from bag_tools.extras import ExtraType, register
from bag_tools.extras.geometry import POSE_DIMS, TWIST_DIMS, pose, twist


def _odometry(m: Any) -> list[float]:
    return pose(m.pose.pose) + twist(m.twist.twist)


register(ExtraType(
    'nav_msgs/msg/Odometry',
    tuple(f'pose.{d}' for d in POSE_DIMS) + tuple(f'twist.{d}' for d in TWIST_DIMS),
    _odometry, quaternions=(3,),
))
