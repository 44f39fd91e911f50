"""Write small bags with rosbags' writers: the same content as ROS 1 .bag, rosbag2 sqlite3, MCAP.

Usage::

    content = BagContent()
    content.joint_state('/joint_states', t_ns, names, positions)
    content.compressed_image('/cam/image_raw/compressed', t_ns, encode_jpeg(rgb))
    paths = write_all(content, tmp_path)            # {'ros1': ..., 'sqlite3': ..., 'mcap': ...}
    path = write_bag(content, tmp_path / 'x', 'mcap')

Each message is stored as a builder that makes it for a given typestore, so ROS 1 (whose
``Header`` has ``seq``) and ROS 2 bags hold the same values. ``stamp_ns=None`` writes the log
time into the header; ``custom_data`` goes into rosbag2's metadata.yaml (ROS 1 has no such thing).
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer as Writer2
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from bag_tools.msgdefs import register_missing

__all__ = [
    'FORMATS',
    'BagContent',
    'compressed_depth_png',
    'encode_jpeg',
    'encode_png',
    'write_all',
    'write_bag',
    'write_video',
]

FORMATS = ('ros1', 'sqlite3', 'mcap')
CONTROLLER_STATE = 'control_msgs/msg/JointTrajectoryControllerState'
ROS1 = get_typestore(Stores.ROS1_NOETIC)
ROS2 = register_missing(get_typestore(Stores.ROS2_HUMBLE), 'humble')
#: The Jazzy field set of JointTrajectoryControllerState (write with ``distro='jazzy'``).
ROS2_JAZZY = register_missing(get_typestore(Stores.ROS2_JAZZY), 'jazzy')

Builder = Callable[[Typestore], Any]


@dataclass
class _Msg:
    topic: str
    msgtype: str
    log_ns: int
    build: Builder


def _time(ts: Typestore, ns: int) -> Any:
    return ts.types['builtin_interfaces/msg/Time'](sec=ns // 1_000_000_000,
                                                   nanosec=ns % 1_000_000_000)


def _header(ts: Typestore, ns: int, frame: str = '') -> Any:
    cls = ts.types['std_msgs/msg/Header']
    if 'seq' in ts.fielddefs['std_msgs/msg/Header'][1][0]:
        return cls(seq=0, stamp=_time(ts, ns), frame_id=frame)
    return cls(stamp=_time(ts, ns), frame_id=frame)


def _pose(ts: Typestore, xyz: Sequence[float], q: Sequence[float]) -> Any:
    t = ts.types
    return t['geometry_msgs/msg/Pose'](
        position=t['geometry_msgs/msg/Point'](x=xyz[0], y=xyz[1], z=xyz[2]),
        orientation=t['geometry_msgs/msg/Quaternion'](x=q[0], y=q[1], z=q[2], w=q[3]))


def encode_jpeg(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def encode_png(img: np.ndarray) -> bytes:
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.png', img)
    assert ok
    return buf.tobytes()


def compressed_depth_png(depth_mm: np.ndarray) -> bytes:
    """compressed_depth_image_transport's 16UC1 layout: 12-byte ConfigHeader + 16-bit PNG."""
    header = struct.pack('<iff', 0, 0.0, 0.0)
    return header + encode_png(depth_mm.astype(np.uint16))


@dataclass
class BagContent:
    """Messages to write, in any order (written sorted by log time)."""

    messages: list[_Msg] = field(default_factory=list)
    custom_data: dict[str, str] = field(default_factory=dict)
    #: topic -> bytes appended after each CDR message (recorders that pad; rosbag2 only)
    trailing: dict[str, bytes] = field(default_factory=dict)
    #: topics written without a message definition (rosbag2 only): their payload is raw bytes
    undefined: set[str] = field(default_factory=set)

    def raw(self, topic: str, msgtype: str, log_ns: int, payload: bytes) -> None:
        """A message of a type whose definition the bag will not carry."""
        self.undefined.add(topic)
        self.add(topic, msgtype, log_ns, lambda ts: payload)

    def add(self, topic: str, msgtype: str, log_ns: int, build: Builder) -> None:
        self.messages.append(_Msg(topic, msgtype, int(log_ns), build))

    def joint_state(
        self, topic: str, log_ns: int, names: Sequence[str], positions: Sequence[float], *,
        stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            return ts.types['sensor_msgs/msg/JointState'](
                header=_header(ts, stamp), name=list(names),
                position=np.asarray(positions, np.float64),
                velocity=np.zeros(0, np.float64), effort=np.zeros(0, np.float64),
            )

        self.add(topic, 'sensor_msgs/msg/JointState', log_ns, build)

    def compressed_image(
        self, topic: str, log_ns: int, payload: bytes, *, fmt: str = 'jpeg',
        stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            return ts.types['sensor_msgs/msg/CompressedImage'](
                header=_header(ts, stamp), format=fmt,
                data=np.frombuffer(payload, np.uint8).copy(),
            )

        self.add(topic, 'sensor_msgs/msg/CompressedImage', log_ns, build)

    def image(
        self, topic: str, log_ns: int, pixels: np.ndarray, encoding: str, *,
        stamp_ns: int | None = None, big_endian: bool = False, pad: int = 0,
    ) -> None:
        """A raw ``sensor_msgs/Image``; ``pad`` extra bytes per row (step > width * bpp)."""
        stamp = log_ns if stamp_ns is None else stamp_ns
        h, w = pixels.shape[:2]
        arr = pixels.astype(pixels.dtype.newbyteorder('>' if big_endian else '<'))
        rows = arr.reshape(h, -1).view(np.uint8)
        if pad:
            rows = np.concatenate([rows, np.full((h, pad), 0xEE, np.uint8)], axis=1)
        data = np.ascontiguousarray(rows).reshape(-1)

        def build(ts: Typestore) -> Any:
            return ts.types['sensor_msgs/msg/Image'](
                header=_header(ts, stamp), height=h, width=w, encoding=encoding,
                is_bigendian=int(big_endian), step=rows.shape[1], data=data.copy(),
            )

        self.add(topic, 'sensor_msgs/msg/Image', log_ns, build)

    def trajectory(
        self, topic: str, log_ns: int, names: Sequence[str], positions: Sequence[float],
        *, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            point = ts.types['trajectory_msgs/msg/JointTrajectoryPoint'](
                positions=np.asarray(positions, np.float64), velocities=np.zeros(0),
                accelerations=np.zeros(0), effort=np.zeros(0),
                time_from_start=ts.types['builtin_interfaces/msg/Duration'](sec=0, nanosec=0),
            )
            return ts.types['trajectory_msgs/msg/JointTrajectory'](
                header=_header(ts, stamp), joint_names=list(names), points=[point],
            )

        self.add(topic, 'trajectory_msgs/msg/JointTrajectory', log_ns, build)

    def float_array(self, topic: str, log_ns: int, values: Sequence[float]) -> None:
        def build(ts: Typestore) -> Any:
            layout = ts.types['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
            return ts.types['std_msgs/msg/Float64MultiArray'](
                layout=layout, data=np.asarray(values, np.float64))

        self.add(topic, 'std_msgs/msg/Float64MultiArray', log_ns, build)

    def pose(
        self, topic: str, log_ns: int, xyz: Sequence[float], quat_xyzw: Sequence[float],
        *, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            pose = t['geometry_msgs/msg/Pose'](
                position=t['geometry_msgs/msg/Point'](x=xyz[0], y=xyz[1], z=xyz[2]),
                orientation=t['geometry_msgs/msg/Quaternion'](
                    x=quat_xyzw[0], y=quat_xyzw[1], z=quat_xyzw[2], w=quat_xyzw[3]),
            )
            return t['geometry_msgs/msg/PoseStamped'](header=_header(ts, stamp), pose=pose)

        self.add(topic, 'geometry_msgs/msg/PoseStamped', log_ns, build)

    def wrench(
        self, topic: str, log_ns: int, force: Sequence[float], torque: Sequence[float],
        *, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            v3 = t['geometry_msgs/msg/Vector3']
            wrench = t['geometry_msgs/msg/Wrench'](force=v3(*force), torque=v3(*torque))
            return t['geometry_msgs/msg/WrenchStamped'](header=_header(ts, stamp), wrench=wrench)

        self.add(topic, 'geometry_msgs/msg/WrenchStamped', log_ns, build)

    def trajectory_points(
        self, topic: str, log_ns: int, names: Sequence[str],
        points: Sequence[tuple[float, Sequence[float]]], *, stamp_ns: int | None = None,
    ) -> None:
        """A JointTrajectory with several points: (time_from_start s, positions) each."""
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            pts = [t['trajectory_msgs/msg/JointTrajectoryPoint'](
                positions=np.asarray(pos, np.float64), velocities=np.zeros(0),
                accelerations=np.zeros(0), effort=np.zeros(0),
                time_from_start=t['builtin_interfaces/msg/Duration'](
                    sec=int(tfs), nanosec=round((tfs - int(tfs)) * 1e9)),
            ) for tfs, pos in points]
            return t['trajectory_msgs/msg/JointTrajectory'](
                header=_header(ts, stamp), joint_names=list(names), points=pts)

        self.add(topic, 'trajectory_msgs/msg/JointTrajectory', log_ns, build)

    def controller_state(
        self, topic: str, log_ns: int, names: Sequence[str], points: dict[str, Sequence[float]],
        *, stamp_ns: int | None = None,
    ) -> None:
        """A control_msgs/JointTrajectoryControllerState; ``points`` maps field (actual,
        desired, feedback, reference, ...) to positions; fields not given are empty. The
        field set is the typestore's: ``distro`` ('humble' or 'jazzy') picks it."""
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            zero = t['builtin_interfaces/msg/Duration'](sec=0, nanosec=0)

            def point(pos: Sequence[float]) -> Any:
                return t['trajectory_msgs/msg/JointTrajectoryPoint'](
                    positions=np.ascontiguousarray(pos, np.float64), velocities=np.zeros(0),
                    accelerations=np.zeros(0), effort=np.zeros(0), time_from_start=zero)

            def multi() -> Any:
                return t['trajectory_msgs/msg/MultiDOFJointTrajectoryPoint'](
                    transforms=[], velocities=[], accelerations=[], time_from_start=zero)

            fields = ts.fielddefs[CONTROLLER_STATE][1]
            kwargs: dict[str, Any] = {}
            for name, _ in fields:
                if name == 'header':
                    kwargs[name] = _header(ts, stamp)
                elif name == 'joint_names':
                    kwargs[name] = list(names)
                elif name == 'multi_dof_joint_names':
                    kwargs[name] = []
                elif name.startswith('multi_dof_'):
                    kwargs[name] = multi()
                else:
                    kwargs[name] = point(points.get(name, ()))
            return t[CONTROLLER_STATE](**kwargs)

        self.add(topic, CONTROLLER_STATE, log_ns, build)

    def odometry(
        self, topic: str, log_ns: int, xyz: Sequence[float], quat_xyzw: Sequence[float],
        linear: Sequence[float], angular: Sequence[float], *, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            v3 = t['geometry_msgs/msg/Vector3']
            pose = t['geometry_msgs/msg/PoseWithCovariance'](
                pose=_pose(ts, xyz, quat_xyzw), covariance=np.zeros(36))
            twist = t['geometry_msgs/msg/TwistWithCovariance'](
                twist=t['geometry_msgs/msg/Twist'](linear=v3(*linear), angular=v3(*angular)),
                covariance=np.zeros(36))
            return t['nav_msgs/msg/Odometry'](header=_header(ts, stamp, 'odom'),
                                              child_frame_id='base_link', pose=pose, twist=twist)

        self.add(topic, 'nav_msgs/msg/Odometry', log_ns, build)

    def pose_covariance(
        self, topic: str, log_ns: int, xyz: Sequence[float], quat_xyzw: Sequence[float],
        *, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            pose = t['geometry_msgs/msg/PoseWithCovariance'](
                pose=_pose(ts, xyz, quat_xyzw), covariance=np.zeros(36))
            return t['geometry_msgs/msg/PoseWithCovarianceStamped'](
                header=_header(ts, stamp, 'map'), pose=pose)

        self.add(topic, 'geometry_msgs/msg/PoseWithCovarianceStamped', log_ns, build)

    def tf(
        self, topic: str, log_ns: int,
        transforms: Sequence[tuple[str, str, Sequence[float], Sequence[float]]],
        *, stamp_ns: int | None = None,
    ) -> None:
        """A tf2_msgs/TFMessage: (parent, child, xyz, quat_xyzw) per transform."""
        stamp = log_ns if stamp_ns is None else stamp_ns

        def build(ts: Typestore) -> Any:
            t = ts.types
            v3 = t['geometry_msgs/msg/Vector3']
            items = [t['geometry_msgs/msg/TransformStamped'](
                header=_header(ts, stamp, parent), child_frame_id=child,
                transform=t['geometry_msgs/msg/Transform'](
                    translation=v3(*xyz), rotation=t['geometry_msgs/msg/Quaternion'](*q)),
            ) for parent, child, xyz, q in transforms]
            return t['tf2_msgs/msg/TFMessage'](transforms=items)

        self.add(topic, 'tf2_msgs/msg/TFMessage', log_ns, build)

    def twist(
        self, topic: str, log_ns: int, linear: Sequence[float], angular: Sequence[float],
        *, stamped: bool = False, stamp_ns: int | None = None,
    ) -> None:
        stamp = log_ns if stamp_ns is None else stamp_ns
        msgtype = 'geometry_msgs/msg/TwistStamped' if stamped else 'geometry_msgs/msg/Twist'

        def build(ts: Typestore) -> Any:
            t = ts.types
            v3 = t['geometry_msgs/msg/Vector3']
            tw = t['geometry_msgs/msg/Twist'](linear=v3(*linear), angular=v3(*angular))
            if stamped:
                return t[msgtype](header=_header(ts, stamp), twist=tw)
            return tw

        self.add(topic, msgtype, log_ns, build)

    def string(self, topic: str, log_ns: int, text: str) -> None:
        self.add(topic, 'std_msgs/msg/String', log_ns,
                 lambda ts: ts.types['std_msgs/msg/String'](data=text))

    def empty(self, topic: str, log_ns: int) -> None:
        self.add(topic, 'std_msgs/msg/Empty', log_ns,
                 lambda ts: ts.types['std_msgs/msg/Empty']())


def write_bag(content: BagContent, path: Path, fmt: str, *, distro: str = 'humble') -> Path:
    """Write ``content`` as ``fmt`` (ros1: ``path.bag``; sqlite3/mcap: folder ``path``);
    ``distro='jazzy'`` writes ROS 2 messages with Jazzy's definitions (MCAP embeds them)."""
    ros2 = ROS2_JAZZY if distro == 'jazzy' else ROS2
    msgs = sorted(content.messages, key=lambda m: m.log_ns)
    if fmt == 'ros1':
        path = path.with_suffix('.bag')
        with Writer1(path) as writer:
            conns: dict[str, Any] = {}
            for m in msgs:  # one connection per topic and type (a topic may mix types)
                key = (m.topic, m.msgtype)
                if key not in conns:
                    conns[key] = writer.add_connection(m.topic, m.msgtype, typestore=ROS1)
                writer.write(conns[key], m.log_ns, ROS1.serialize_ros1(m.build(ROS1),
                                                                      m.msgtype))
        return path
    plugin = {'sqlite3': StoragePlugin.SQLITE3, 'mcap': StoragePlugin.MCAP}[fmt]
    with Writer2(path, version=9, storage_plugin=plugin) as writer:
        for key, value in content.custom_data.items():
            writer.set_custom_data(key, value)
        conns = {}
        for m in msgs:
            if m.topic not in conns:
                if m.topic in content.undefined:
                    store = get_typestore(Stores.ROS2_HUMBLE)
                    store.register(get_types_from_msg('uint8[] blob', m.msgtype))
                    conns[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=store)
                else:
                    conns[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=ros2)
            if m.topic in content.undefined:
                data = m.build(ros2)
            else:
                data = bytes(ros2.serialize_cdr(m.build(ros2), m.msgtype))
            writer.write(conns[m.topic], m.log_ns, data + content.trailing.get(m.topic, b''))
    if content.undefined:  # like an old rosbag2 recording: no definitions in the storage
        assert fmt == 'sqlite3', 'undefined types are only written to sqlite3 bags'
        types = {m.msgtype for m in msgs if m.topic in content.undefined}
        for db in path.glob('*.db3'):
            with sqlite3.connect(db) as conn:
                conn.executemany('DELETE FROM message_definitions WHERE topic_type = ?',
                                 [(t,) for t in types])
    return path


def write_all(content: BagContent, directory: Path, stem: str = 'bag') -> dict[str, Path]:
    """The same content in every container: {'ros1': .bag, 'sqlite3': dir, 'mcap': dir}."""
    directory.mkdir(parents=True, exist_ok=True)
    return {fmt: write_bag(content, directory / f'{stem}_{fmt}', fmt) for fmt in FORMATS}


def write_video(path: Path, frames: Sequence[np.ndarray], fps: int = 15,
                codec: str = 'libx264') -> Path:
    """Encode RGB frames (even height and width) into ``path`` (mp4/mkv) with PyAV."""
    import av

    from bag_tools.lerobot.video import keep_scheduling

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    # libsvtav1 switches the calling thread to SCHED_FIFO 99 (as root) and leaves it there: the
    # rest of the test session, and the processes it starts, would run real-time.
    with keep_scheduling(), av.open(str(path), 'w') as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = 'yuv420p'
        if codec == 'libx264':
            stream.options = {'crf': '10', 'preset': 'ultrafast'}
        elif codec == 'mpeg4':
            stream.bit_rate = 4_000_000  # near-lossless on small test frames
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format='rgb24')
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
