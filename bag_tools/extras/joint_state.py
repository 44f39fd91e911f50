"""sensor_msgs/JointState on another topic (a gripper driver): its dims are the entry's joints,
picked by name (``bag_tools.observation.joint_positions``)."""

from __future__ import annotations

from typing import Any

from bag_tools.extras import ExtraType, register


def _unnamed(m: Any) -> list[float]:
    msg = 'a JointState extra observation is read by its joints (observation.joint_positions)'
    raise TypeError(msg)


register(ExtraType('sensor_msgs/msg/JointState', (), _unnamed, named=True))
