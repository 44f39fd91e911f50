"""Message definitions rosbags' typestores lack, registered for reading (and for tests, writing).

``control_msgs/JointTrajectoryControllerState`` (the state topic of ros_control /
ros2_control's joint trajectory controller) changed between distros: Humble carries the new
``reference``/``feedback``/``error``/``output`` points *and* the deprecated ``desired``/
``actual`` (sometimes left empty); Jazzy and later only the new ones; ROS 1 only
``desired``/``actual``/``error``. A bag that embeds its definitions (MCAP, ROS 1) is read with
those; one that does not (an old sqlite3 rosbag2) falls back to the Humble superset below.
"""

from __future__ import annotations

from rosbags.typesys import get_types_from_msg
from rosbags.typesys.store import Typestore

__all__ = ['CONTROLLER_STATE_HUMBLE', 'CONTROLLER_STATE_JAZZY', 'register_missing']

CONTROLLER_STATE_TYPE = 'control_msgs/msg/JointTrajectoryControllerState'

_MULTI_DOF_NEW = """
string[] multi_dof_joint_names
trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_reference
trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_feedback
trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_error
trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_output
"""

#: Humble (control_msgs 4.x): the new points, then the deprecated desired/actual.
CONTROLLER_STATE_HUMBLE = """std_msgs/Header header
string[] joint_names
trajectory_msgs/JointTrajectoryPoint reference
trajectory_msgs/JointTrajectoryPoint feedback
trajectory_msgs/JointTrajectoryPoint error
trajectory_msgs/JointTrajectoryPoint output
trajectory_msgs/JointTrajectoryPoint desired
trajectory_msgs/JointTrajectoryPoint actual
""" + _MULTI_DOF_NEW + """trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_desired
trajectory_msgs/MultiDOFJointTrajectoryPoint multi_dof_actual
"""

#: Jazzy and later (control_msgs 5.x): the deprecated fields are gone.
CONTROLLER_STATE_JAZZY = """std_msgs/Header header
string[] joint_names
trajectory_msgs/JointTrajectoryPoint reference
trajectory_msgs/JointTrajectoryPoint feedback
trajectory_msgs/JointTrajectoryPoint error
trajectory_msgs/JointTrajectoryPoint output
""" + _MULTI_DOF_NEW

DEFINITIONS = {'humble': CONTROLLER_STATE_HUMBLE, 'jazzy': CONTROLLER_STATE_JAZZY}


def register_missing(store: Typestore, distro: str = 'humble') -> Typestore:
    """Register the definitions ``store`` lacks (``distro``'s field set); returns ``store``."""
    if CONTROLLER_STATE_TYPE not in store.fielddefs:
        store.register(get_types_from_msg(DEFINITIONS[distro], CONTROLLER_STATE_TYPE))
    return store
