"""``metaworld_arm_node``: the Meta-World Sawyer as a ROS 2 arm, for the demo and closed loops.

Publishes what the recording setup's bags hold (``ptr_sim.setups``: the same topics, joint
names and pose layout as ``ptr record-sim`` writes), stepping the simulator at the control rate
with the latest ``std_msgs/Float64MultiArray`` end-effector command (a command older than one
control period is not repeated: the arm holds). Episodes reset on success or after
``max_steps``, each with a new held-out goal.

With ``enable_service`` set it arms that ``std_srvs/SetBool`` service once the state is flowing
(a policy node starts disabled), and with ``duration_s`` > 0 it stops that many seconds after
the policy is armed and writes a JSON summary (commands received, simulator steps, episodes,
successes) to ``summary``. At every episode reset it disarms and re-arms the policy
(``rearm_on_reset``), so the new episode starts from an empty observation history.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from geometry_msgs.msg import PointStamped, PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool

from ptr_ros.params import declare
from ptr_ros.run import run_node
from ptr_sim.env import MetaWorldEnv
from ptr_sim.evaluate import eval_seeds
from ptr_sim.setups import CONTROL_RATE_HZ, get_setup, pose_values, state_values

__all__ = ['MetaWorldArmNode', 'main']

FIRST_COMMAND_WAIT_S = 60.0  # after enable, how long to wait for the policy's first command


class MetaWorldArmNode(Node):
    def __init__(self) -> None:
        super().__init__('metaworld_arm')
        self.task = declare(self, 'task', 'pick-place-v3', 'Meta-World task (e.g. push-v3).')
        setup = declare(self, 'setup', 'a', 'Recording setup whose topics to publish.',
                        choices=('a', 'b'))
        self.rate_hz = declare(self, 'rate_hz', CONTROL_RATE_HZ, 'Control and publish rate.',
                               lo=1.0, hi=1000.0)
        self.max_steps = declare(self, 'max_steps', 150, 'Steps before an episode is reset.',
                                 lo=1, hi=100000)
        self.duration_s = declare(self, 'duration_s', 0.0, 'Stop after this long (0 = never).',
                                  lo=0.0, hi=1e6)
        self.summary = declare(self, 'summary', '', 'JSON summary file written at the end.')
        goal_seed = declare(self, 'goal_seed', 7, 'Held-out goals: ptr_sim.evaluate.eval_seeds '
                            'with this seed (the benchmark evaluates setup k of seed s on '
                            '10 s + k).', lo=0, hi=10**6)
        service = declare(self, 'enable_service', '', 'SetBool service to arm once running.')
        self.rearm = declare(
            self, 'rearm_on_reset', True, 'With enable_service: disarm and re-arm the policy '
            'at every episode reset, so it starts the new episode with an empty observation '
            'history and no chunk of the last one (commands in between are dropped).')
        self.lockstep = declare(
            self, 'lockstep', False, 'Step the simulator once per command as it arrives and '
            'publish the new state at once (a stepped simulator: every observation the policy '
            'samples is one step after the last); false: step on the rate_hz timer.')
        self.setup = get_setup(setup)
        self.env = MetaWorldEnv(self.task)
        self._seeds = iter(eval_seeds(100_000, seed=goal_seed))
        self.env.reset(next(self._seeds))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self._state_pub = self.create_publisher(JointState, self.setup.state_topic,
                                                qos_profile_sensor_data)
        self._points = self.setup.pose_type.endswith('PointStamped')
        pose_cls: Any = PointStamped if self._points else PoseStamped
        self._pose_pubs = {name: self.create_publisher(pose_cls, topic, qos_profile_sensor_data)
                           for name, topic in self.setup.poses}
        self._task_pub = self.create_publisher(String, self.setup.task_topic, reliable)
        self.create_subscription(Float64MultiArray, self.setup.command_topic,
                                 self._on_command, reliable)
        self._command: np.ndarray | None = None
        self._command_time = 0.0
        self.commands = 0
        self.sim_steps = 0
        self.episodes = 0
        self.successes = 0
        self._episode_steps = 0
        self._t0 = time.monotonic()
        self._enable = self.create_client(SetBool, service) if service else None
        self._enabled = self._enable is None
        self._enable_future: Any = None
        self._rearm_phase: bool | None = None  # the SetBool value being requested, None: idle
        self._rearm_future: Any = None
        self.dropped = 0  # commands received while re-arming
        self.done = False
        self._driving_since: float | None = None
        self.create_timer(1.0 / self.rate_hz, self._on_tick)
        self.get_logger().info(f'{self.task}, setup {setup}: {self.setup.state_topic} + poses '
                               f'at {self.rate_hz:g} Hz; commands on {self.setup.command_topic}')

    def _on_command(self, msg: Float64MultiArray) -> None:
        data = np.asarray(msg.data, dtype=np.float64)
        if data.shape != (4,) or not np.all(np.isfinite(data)):
            self.get_logger().warning(f'ignoring a non-finite or non-4-D command {data.tolist()}',
                                      throttle_duration_sec=2.0)
            return
        if self._rearm_phase is not None:
            self.dropped += 1  # the last episode's chunk, or a command before the re-arm
            return
        self._command = data
        self._command_time = time.monotonic()
        if self._enabled and self._driving_since is None:
            self._driving_since = self._command_time  # the run is timed from the first command
        self.commands += 1
        if self.lockstep and not self.done:
            self._step(data)
            self._publish()

    def _publish(self) -> None:
        now = self.get_clock().now().to_msg()
        js = JointState()
        js.header.stamp = now
        js.name = list(self.setup.joints)
        js.position = state_values(self.setup, self.env.obs, self.env.fingers()).tolist()
        self._state_pub.publish(js)
        poses = pose_values(self.env.obs)
        for name, pub in self._pose_pubs.items():
            p = poses[name]
            msg: Any = PointStamped() if self._points else PoseStamped()
            msg.header.stamp = now
            msg.header.frame_id = self.setup.frame_id
            if self._points:
                msg.point.x, msg.point.y, msg.point.z = map(float, p[:3])
            else:
                msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, p[:3])
                (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
                 msg.pose.orientation.w) = map(float, p[3:])
            pub.publish(msg)
        self._task_pub.publish(String(data=self.task))

    def _arm(self) -> None:
        if self._enabled or self._enable is None:
            return
        if self._enable_future is None and self._enable.service_is_ready():
            self._enable_future = self._enable.call_async(SetBool.Request(data=True))
        elif self._enable_future is not None and self._enable_future.done():
            res = self._enable_future.result()
            self._enabled = bool(res is not None and res.success)
            self._enable_future = None
            self._t0 = time.monotonic()
            self.get_logger().info(f'enable: {res.message if res else "no response"}')

    def _on_tick(self) -> None:
        if self.done:
            return
        fresh = self._command is not None and (
            time.monotonic() - self._command_time < 2.0 / self.rate_hz)
        if fresh and self._command is not None and not self.lockstep:
            self._step(self._command)
        self._publish()
        self._arm()
        self._step_rearm()
        if self._enabled and self.duration_s and self._finished(time.monotonic()):
            self.done = True

    def _step(self, command: np.ndarray) -> None:
        _, ok = self.env.step(command)
        self.sim_steps += 1
        self._episode_steps += 1
        if ok or self._episode_steps >= self.max_steps:
            self.episodes += 1
            self.successes += int(ok)
            self._episode_steps = 0
            self.env.reset(next(self._seeds))
            self._command = None
            if self._enable is not None and self.rearm and self._enabled:
                self._rearm_phase = False  # disarm first, then arm again

    def _step_rearm(self) -> None:
        if self._rearm_phase is None or self._enable is None:
            return
        if self._rearm_future is None:
            if self._enable.service_is_ready():
                self._rearm_future = self._enable.call_async(
                    SetBool.Request(data=self._rearm_phase))
        elif self._rearm_future.done():
            self._rearm_future = None
            self._rearm_phase = True if self._rearm_phase is False else None

    def _finished(self, now: float) -> bool:
        # Timed from the first command after enable, so a policy that loads slowly on a busy
        # machine still drives for duration_s; one that never commands gives up after a minute.
        if self._driving_since is None:
            return now - self._t0 >= self.duration_s + FIRST_COMMAND_WAIT_S
        return now - self._driving_since >= self.duration_s

    def write_summary(self) -> None:
        if not self.summary:
            return
        Path(self.summary).write_text(json.dumps({
            'task': self.task, 'setup': self.setup.name, 'commands': self.commands,
            'sim_steps': self.sim_steps, 'episodes': self.episodes,
            'successes': self.successes, 'enabled': self._enabled, 'dropped': self.dropped,
            'seconds': time.monotonic() - (self._driving_since or self._t0),
        }))


def _spin_until_done(node: MetaWorldArmNode) -> None:
    while rclpy.ok() and not node.done:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.write_summary()


def main(args: list[str] | None = None) -> None:
    run_node(MetaWorldArmNode, 'metaworld_arm', args, spin=_spin_until_done)


if __name__ == '__main__':
    main()
