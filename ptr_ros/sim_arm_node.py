"""``sim_arm_node``: a kinematic arm with a camera, for closed-loop tests and the demo.

Publishes ``sensor_msgs/JointState`` at ``rate_hz`` and one rendered camera image per camera
topic at ``camera_rate_hz`` (``sensor_msgs/Image`` rgb8, or ``CompressedImage`` JPEG when the
topic ends in ``/compressed`` or ``image_transport`` is ``compressed``). Follows both command
interfaces of ``ros2_control``: ``trajectory_msgs/JointTrajectory`` (timed points, as
``joint_trajectory_controller``) and ``std_msgs/Float64MultiArray`` (as
``forward_position_controller``), under a joint velocity limit and the joint limits.

The joints, limits, state and camera topics come from a robot profile (``profile``: a profile
YAML, or a checkpoint directory whose profile is used) or from the explicit parameters.
``~/cameras`` (``std_srvs/SetBool``) pauses and resumes the cameras, to exercise watchdogs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from bag_tools.profile import RobotProfile, load_profile
from ptr_core.checkpoint import read_robots
from ptr_core.errors import PtrError
from ptr_ros.conversions import message_class
from ptr_ros.params import declare
from ptr_ros.run import run_node
from ptr_ros.sim_arm import SimArm, end_effector, render_arm

__all__ = ['SimArmNode', 'load_robot_profile', 'main']

TRANSPORTS = ('auto', 'raw', 'compressed')


def load_robot_profile(path: str, robot: str = '') -> RobotProfile:
    """A robot profile from a profile YAML or from a checkpoint directory's ``config.json``."""
    p = Path(path)
    if not p.is_dir():
        return load_profile(p)
    profiles: dict[str, Any] = {}
    for name in ('robots.json', 'config.json'):
        file = p / name
        if not file.is_file():
            continue
        data = (read_robots(p) if name == 'robots.json' and (p / 'preprocess.json').is_file()
                else json.loads(file.read_text()))  # the layout owns the image size
        robots = data.get('robots', data) if isinstance(data, dict) else {}
        for key, entry in robots.items():
            if isinstance(entry, dict) and isinstance(entry.get('profile'), dict):
                profiles[key] = entry['profile']
        if profiles:
            break
    if not profiles:
        msg = f'{p}: no robot profile found in the checkpoint (robots.json / config.json)'
        raise PtrError(msg)
    key = robot or sorted(profiles)[0]
    if key not in profiles:
        msg = f'{p}: checkpoint has no robot {key!r} (has {sorted(profiles)})'
        raise PtrError(msg)
    return RobotProfile.from_dict(profiles[key], source=str(p))


def is_compressed(topic: str, transport: str) -> bool:
    return transport == 'compressed' or (transport == 'auto' and topic.endswith('/compressed'))


class SimArmNode(Node):
    """One kinematic arm; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__('sim_arm', **kwargs)
        profile_path = declare(self, 'profile', '', 'Robot profile YAML or checkpoint '
                               'directory; when set it gives joints, limits, topics, rate.')
        robot = declare(self, 'robot', '', 'Robot of a multi-robot checkpoint (default: first).')
        profile = load_robot_profile(profile_path, robot) if profile_path else None
        self.arm = self._declare_arm(profile)
        joints = self.arm.joint_names
        self.rate_hz = declare(self, 'rate_hz', 50.0, 'joint_states publish rate (Hz).',
                               lo=1.0, hi=1000.0)
        camera_rate = declare(self, 'camera_rate_hz', 15.0, 'Camera publish rate (Hz).',
                              lo=0.5, hi=200.0)
        size = list(profile.image_size) if profile and profile.cameras else [96, 128]
        size = declare(self, 'image_size', [int(2 * v) if profile else v for v in size],
                       'Rendered image [height, width] (before the policy resizes it).')
        state_topic = profile.state_topic if profile else '/joint_states'
        state_topic = declare(self, 'joint_states_topic', state_topic, 'JointState output.')
        cameras, transport = self._declare_cameras(profile)
        trajectory_topic = declare(
            self, 'trajectory_topic', '/joint_trajectory_controller/joint_trajectory',
            'JointTrajectory command input.')
        forward_topic = declare(self, 'forward_topic', '/forward_position_controller/commands',
                                'Float64MultiArray command input (one value per joint).')

        self.image_size = (int(size[0]), int(size[1]))
        self.cameras_on = True
        self._last_step = time.monotonic()
        self._state_pub = self.create_publisher(JointState, state_topic, 10)
        self._camera_pubs: list[tuple[Any, bool]] = []
        for entry in cameras:
            if not entry:
                continue
            _, _, topic = entry.partition('=')
            compressed = is_compressed(topic, transport)
            msg_type = CompressedImage if compressed else Image
            pub = self.create_publisher(msg_type, topic, qos_profile_sensor_data)
            self._camera_pubs.append((pub, compressed))
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # The profile's extra observations, from the arm's kinematics (so a policy trained
        # with them has every input it waits for).
        self._extra_pubs = [
            (self.create_publisher(message_class(e.type), e.topic, qos_profile_sensor_data),
             e.type)
            for e in (profile.extra_state if profile else ())
        ]
        self.create_subscription(JointTrajectory, trajectory_topic, self._on_trajectory,
                                 reliable)
        self.create_subscription(Float64MultiArray, forward_topic, self._on_forward, reliable)
        self.create_service(SetBool, '~/cameras', self._on_cameras)
        self.create_timer(1.0 / self.rate_hz, self._on_step)
        self.create_timer(1.0 / camera_rate, self._on_camera_timer)
        self.get_logger().info(
            f'sim arm: {len(joints)} joints, {len(self._camera_pubs)} cameras, '
            f'state on {state_topic}, commands on {trajectory_topic} and {forward_topic}')

    def _declare_arm(self, profile: RobotProfile | None) -> SimArm:
        """The arm from its parameters (joints, limits, start, speed; the profile's defaults)."""
        joints = list(profile.joints) if profile else ['joint_1', 'joint_2', 'joint_3']
        joints = declare(self, 'joint_names', joints, 'Joint names, in order.')
        lower = list(profile.joint_lower) if profile else [-2.5] * len(joints)
        upper = list(profile.joint_upper) if profile else [2.5] * len(joints)
        lower = declare(self, 'joint_lower', [float(v) for v in lower], 'Lower limits (rad).')
        upper = declare(self, 'joint_upper', [float(v) for v in upper], 'Upper limits (rad).')
        initial = declare(self, 'initial_positions', [0.0] * len(joints),
                          'Start positions (rad), one per joint.')
        max_velocity = declare(self, 'max_velocity', 2.0, 'Joint velocity limit (rad/s).',
                               lo=0.01, hi=100.0)
        return SimArm(joints, lower=lower, upper=upper, initial=initial,
                      max_velocity=max_velocity)

    def _declare_cameras(self, profile: RobotProfile | None) -> tuple[list[str], str]:
        """The camera parameters: role=topic entries and the image transport (and
        ``self.jpeg_quality``)."""
        cameras = [f'{c.role}={c.topic}' for c in profile.cameras if not c.depth] if profile \
            else ['front=/camera/front/image_raw']
        cameras = declare(self, 'camera_topics', cameras or [''],
                          'Cameras as role=topic entries (empty entries are ignored).')
        transport = declare(self, 'image_transport', 'auto', 'Image type: auto (compressed '
                            'when the topic ends in /compressed), raw or compressed.',
                            choices=TRANSPORTS)
        self.jpeg_quality = declare(self, 'jpeg_quality', 90, 'JPEG quality of compressed '
                                    'images.', lo=1, hi=100)
        return cameras, transport

    # -- commands -------------------------------------------------------------------------
    def _on_trajectory(self, msg: JointTrajectory) -> None:
        names = list(msg.joint_names)
        if sorted(names) != sorted(self.arm.joint_names) or not msg.points:
            self.get_logger().warning(
                f'JointTrajectory for joints {names} with {len(msg.points)} points ignored '
                f'(arm has {self.arm.joint_names})', throttle_duration_sec=2.0)
            return
        order = [names.index(n) for n in self.arm.joint_names]
        times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in msg.points]
        points = np.array([[p.positions[i] for i in order] for p in msg.points])
        start = time.monotonic()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        if stamp > 0:  # as joint_trajectory_controller: start at the stamp (0: on receipt)
            start -= self.get_clock().now().nanoseconds * 1e-9 - stamp
        try:
            self.arm.set_trajectory(start, times, points)
        except PtrError as err:
            self.get_logger().warning(f'JointTrajectory ignored: {err}',
                                      throttle_duration_sec=2.0)

    def _on_forward(self, msg: Float64MultiArray) -> None:
        try:
            self.arm.set_target(list(msg.data))
        except PtrError as err:
            self.get_logger().warning(f'Float64MultiArray ignored: {err}',
                                      throttle_duration_sec=2.0)

    def _on_cameras(self, request: SetBool.Request, response: SetBool.Response) -> Any:
        self.cameras_on = bool(request.data)
        response.success = True
        response.message = f'cameras {"on" if self.cameras_on else "off"}'
        return response

    # -- output ---------------------------------------------------------------------------
    def _on_step(self) -> None:
        now = time.monotonic()
        dt, self._last_step = now - self._last_step, now
        self.arm.step(now, min(dt, 0.2))
        msg = JointState()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.name = list(self.arm.joint_names)
        msg.position = [float(v) for v in self.arm.position]
        msg.velocity = [float(v) for v in self.arm.velocity]
        self._state_pub.publish(msg)
        for pub, msgtype in self._extra_pubs:
            pub.publish(self._extra_msg(msgtype, msg.header.stamp))

    def _extra_msg(self, msgtype: str, stamp: Any) -> Any:
        """Tip pose/point from forward kinematics; twist from joint velocities; zero wrench."""
        out = message_class(msgtype)()
        xyz, pitch = end_effector(self.arm.position)
        body = out
        for field in ('pose', 'point', 'vector', 'twist', 'wrench'):
            if hasattr(out, field) and hasattr(out, 'header'):
                out.header.stamp = stamp
                out.header.frame_id = 'sim_base'
                body = getattr(out, field)
        if hasattr(body, 'position'):  # Pose
            body.position.x, body.position.y, body.position.z = (float(v) for v in xyz)
            body.orientation.y = float(np.sin(pitch / 2))
            body.orientation.w = float(np.cos(pitch / 2))
        elif hasattr(body, 'linear'):  # Twist: joint speeds as a stand-in
            v = np.resize(self.arm.velocity, 3)
            body.linear.x, body.linear.y, body.linear.z = (float(a) for a in v)
        elif hasattr(body, 'x'):  # Point, Vector3
            body.x, body.y, body.z = (float(v) for v in xyz)
        return out  # Wrench: zeros (no contact in a kinematic arm)

    def _on_camera_timer(self) -> None:
        if not self.cameras_on or not self._camera_pubs:
            return
        rgb = render_arm(self.arm.position, self.image_size)
        stamp = self.get_clock().now().to_msg()
        for pub, compressed in self._camera_pubs:
            pub.publish(self._image_msg(rgb, stamp, compressed))

    def _image_msg(self, rgb: np.ndarray, stamp: Any, compressed: bool) -> Any:
        if compressed:
            ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            assert ok
            out = CompressedImage()
            out.header.stamp = stamp
            out.header.frame_id = 'sim_camera'
            out.format = 'rgb8; jpeg compressed bgr8'
            out.data = buf.tobytes()
            return out
        img = Image()
        img.header.stamp = stamp
        img.header.frame_id = 'sim_camera'
        img.height, img.width = rgb.shape[:2]
        img.encoding = 'rgb8'
        img.step = rgb.shape[1] * 3
        img.data = rgb.tobytes()
        return img


def main(args: list[str] | None = None) -> None:
    run_node(SimArmNode, 'sim_arm_node', args)


if __name__ == '__main__':
    main()
