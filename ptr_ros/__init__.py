"""ROS 2 nodes: the policy node, a simulated arm, and ROS <-> numpy conversions."""
