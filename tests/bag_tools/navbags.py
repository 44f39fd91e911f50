"""A nav2-style mobile base recorded on simulation time, written into bags: header stamps on the
sim clock (starting at ``SIM0``, running at ``RTF`` x wall time), log time on the wall clock, and
one header-less ``geometry_msgs/Twist`` on ``/cmd_vel`` as in every Humble nav2 bag (a plain
module like armbags, shared by the clock, validity and base-only tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from bagfactory import BagContent, write_bag

T0 = 1_700_000_000_000_000_000  # wall clock at the bag start, ns
SIM0 = 1_000_000_000_000  # sim clock at the bag start (1000 s after the simulator started)
RTF = 0.8  # sim seconds per wall second
WHEELS = ['wheel_left_joint', 'wheel_right_joint']
SPEED = 0.2  # m/s along x, in sim time


def wall(t_s: float) -> int:
    return T0 + round(t_s * 1e9)


def sim(t_s: float) -> int:
    """The sim-clock stamp of wall second ``t_s``."""
    return SIM0 + round(t_s * RTF * 1e9)


def base_x(sim_s: float) -> float:
    """The base's x (odom frame) ``sim_s`` sim seconds after the start."""
    return SPEED * sim_s


def nav2_content(*, duration_s: float = 4.0) -> BagContent:
    """Wheel joint states and TF odom -> base_footprint at 30 Hz, odometry at 20 Hz, AMCL at
    2 Hz (all stamped on sim time); a static base_footprint -> base_link; ``/cmd_vel`` at 10 Hz
    without a header, whose ``linear.x`` is the sim second it was sent (to check its clock)."""
    c = BagContent()
    c.tf('/tf_static', wall(0.0), [('base_footprint', 'base_link', [0, 0, 0.1], [0, 0, 0, 1])],
         stamp_ns=sim(0.0))
    for i in range(int(duration_s * 30) + 1):
        t = i / 30
        x = base_x(t * RTF)
        c.joint_state('/joint_states', wall(t), WHEELS, [10 * x, 10 * x], stamp_ns=sim(t))
        c.tf('/tf', wall(t + 0.002), [('odom', 'base_footprint', [x, 0, 0], [0, 0, 0, 1])],
             stamp_ns=sim(t))
    for i in range(int(duration_s * 20) + 1):
        t = i / 20
        c.odometry('/odom', wall(t + 0.001), [base_x(t * RTF), 0, 0], [0, 0, 0, 1],
                   [SPEED, 0, 0], [0, 0, 0], stamp_ns=sim(t))
    for i in range(int(duration_s * 2) + 1):
        t = i / 2
        c.pose_covariance('/amcl_pose', wall(t + 0.003), [base_x(t * RTF), 0, 0], [0, 0, 0, 1],
                          stamp_ns=sim(t))
    for i in range(int(duration_s * 10) + 1):
        t = i / 10
        c.twist('/cmd_vel', wall(t), [t * RTF, 0, 0], [0, 0, 0])
    return c


def nav2_bag(tmp: Path, name: str = 'nav2', *, fmt: str = 'mcap', **kw: Any) -> Path:
    return write_bag(nav2_content(**kw), tmp / name, fmt)


def wheel_profile(**overrides: Any) -> dict[str, Any]:
    """The wheels as the joint group (next-state actions), cmd_vel as the base's action and
    the base's pose in odom from TF: the profile a nav2 user writes today."""
    d: dict[str, Any] = {
        'robot': 'nav_base',
        'joints': list(WHEELS),
        'state_topic': '/joint_states',
        'action': {'source': 'next_state'},
        'joint_limits': {'lower': [-1e3, -1e3], 'upper': [1e3, 1e3]},
        'extra_state': [{'type': 'tf2_msgs/msg/TFMessage', 'parent': 'odom',
                         'child': 'base_link', 'name': 'base'}],
        'extra_action': [{'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist',
                          'name': 'cmd'}],
        'rate_hz': 10.0,
        'min_episode_steps': 8,
    }
    d.update(overrides)
    return d


def held_sim_seconds(grid_ns: np.ndarray) -> np.ndarray:
    """The ``linear.x`` a held ``/cmd_vel`` gives at each sim-clock grid time: the latest
    command sent at or before it (sent every 0.1 wall s = 0.08 sim s)."""
    sent = (grid_ns - SIM0) / 1e9 / RTF  # wall seconds
    return np.floor(sent * 10 + 1e-6) / 10 * RTF
