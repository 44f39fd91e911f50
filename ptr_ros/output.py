"""Commands out of the policy node: one limited plan ``[N, Da]`` -> the messages controllers read.

* ``trajectory``: ``trajectory_msgs/JointTrajectory`` for ``joint_trajectory_controller``, its
  ``header.stamp`` the control tick's planned time and point ``i`` at ``(i + 1) / rate`` from it
  (positions only: the controller's spline, or its ``positions_upsampling`` mode, interpolates).
* ``forward``: ``std_msgs/Float64MultiArray`` of the first point, for
  ``forward_position_controller`` (``forward_command_controller``).

An arm-group profile publishes each group's slice under its own joint names on its own topic;
extra actions (a base's ``cmd_vel``) follow the arms' dims and go out as Twist[Stamped].
Publishers are made by the caller (``make(msg_type, topic)``), so this holds no ROS node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from bag_tools.profile import RobotProfile
from ptr_ros.conversions import forward_command, message_class, trajectory_command, twist_command

__all__ = ['CommandOutput']


class CommandOutput:
    """``publish(points, stamp)``: every command message of one control tick."""

    def __init__(self, profile: RobotProfile, *, interface: str, rate_hz: float,
                 command_topic: str, group_topics: Sequence[str], extra_topics: Sequence[str],
                 make: Callable[[Any, str], Any]) -> None:
        self.interface, self.dt = interface, 1.0 / rate_hz
        msg_type = JointTrajectory if interface == 'trajectory' else Float64MultiArray
        names = list(profile.action_names)
        n_extra = sum(len(e.dim_names) for e in profile.extra_action)
        self.arm_actions = len(names) - n_extra
        if profile.multi_arm:  # one command per arm group, on its own topic
            self.targets = [(list(g.action.names), make(msg_type, topic))
                            for g, topic in zip(profile.groups, group_topics)]
        else:
            self.targets = [(names[:self.arm_actions], make(msg_type, command_topic))]
        self.extras = [(len(e.dim_names), message_class(e.type),
                        make(message_class(e.type), topic))
                       for e, topic in zip(profile.extra_action, extra_topics)]
        self.publishers = [pub for _, pub in self.targets] + [pub for _, _, pub in self.extras]

    def publish(self, points: npt.NDArray[np.float64], stamp: Any) -> None:
        """``points [N, Da]`` (limited); ``stamp`` the tick's planned time (ROS ``Time``)."""
        start = 0
        for names, pub in self.targets:
            part = points[:, start:start + len(names)]
            start += len(names)
            if self.interface == 'trajectory':
                pub.publish(trajectory_command(names, part, self.dt, stamp))
            else:
                pub.publish(forward_command(names, part[0]))
        values = points[0, self.arm_actions:]
        start = 0
        for size, cls, pub in self.extras:
            pub.publish(twist_command(cls, values[start:start + size], stamp))
            start += size
