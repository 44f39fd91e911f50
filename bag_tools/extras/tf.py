"""tf2_msgs/TFMessage: the pose of a ``child`` frame in a ``parent`` frame, looked up through the
transform tree (``/tf`` and ``/tf_static``; see ``bag_tools.tf_tree``). Seven dims like a Pose."""

from __future__ import annotations

from typing import Any

from bag_tools.extras import ExtraType, register
from bag_tools.extras.geometry import POSE_DIMS


def _by_tree(m: Any) -> list[float]:
    msg = 'a TF extra observation is looked up through the tree (bag_tools.tf_tree)'
    raise TypeError(msg)


register(ExtraType('tf2_msgs/msg/TFMessage', POSE_DIMS, _by_tree, quaternions=(3,),
                   frames=True))
