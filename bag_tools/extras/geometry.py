"""geometry_msgs: Pose, PoseWithCovariance, Wrench, Twist, Point, Vector3 (and *Stamped)."""

from __future__ import annotations

from typing import Any

from bag_tools.extras import ExtraType, register

POSE_DIMS = ('position.x', 'position.y', 'position.z',
             'orientation.x', 'orientation.y', 'orientation.z', 'orientation.w')
TWIST_DIMS = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')
WRENCH_DIMS = ('force.x', 'force.y', 'force.z', 'torque.x', 'torque.y', 'torque.z')
XYZ = ('x', 'y', 'z')


def xyz(v: Any) -> list[float]:
    return [float(v.x), float(v.y), float(v.z)]


def pose(p: Any) -> list[float]:
    q = p.orientation
    return [*xyz(p.position), float(q.x), float(q.y), float(q.z), float(q.w)]


def twist(t: Any) -> list[float]:
    return xyz(t.linear) + xyz(t.angular)


def wrench(w: Any) -> list[float]:
    return xyz(w.force) + xyz(w.torque)


def _pair(name: str, dims: tuple[str, ...], fn: Any, field: str, **kw: Any) -> None:
    register(ExtraType(f'geometry_msgs/msg/{name}', dims, fn, **kw))
    register(ExtraType(f'geometry_msgs/msg/{name}Stamped', dims,
                       lambda m: fn(getattr(m, field)), **kw))


_pair('Pose', POSE_DIMS, pose, 'pose', quaternions=(3,))
_pair('PoseWithCovariance', POSE_DIMS, lambda m: pose(m.pose), 'pose', quaternions=(3,))
_pair('Wrench', WRENCH_DIMS, wrench, 'wrench')
_pair('Twist', TWIST_DIMS, twist, 'twist', action=True)
_pair('Point', XYZ, xyz, 'point')
_pair('Vector3', XYZ, xyz, 'vector')
