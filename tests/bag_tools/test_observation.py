"""Message → numpy: every image encoding, joint ordering by name, commands, extra observations.

Messages are the real rosbags types (what ingestion sees) and plain objects holding the field
types rclpy gives (``array.array``, ``bytes``, lists): the node uses this same code.
"""

from __future__ import annotations

import array
import struct
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
from bagfactory import ROS2, compressed_depth_png, encode_jpeg, encode_png

from bag_tools.errors import ImageDecodeError, IngestError
from bag_tools.observation import (
    command_values,
    decode_image,
    extra_state_values,
    joint_positions,
)

T = ROS2.types
RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
DEPTH = RNG.integers(0, 65536, (6, 8), dtype=np.uint16)


def raw_image(pixels: np.ndarray, encoding: str, *, big: bool = False, pad: int = 0) -> Any:
    h, w = pixels.shape[:2]
    arr = pixels.astype(pixels.dtype.newbyteorder('>' if big else '<'))
    rows = np.ascontiguousarray(arr).reshape(h, -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=0),
                                      frame_id='')
    return T['sensor_msgs/msg/Image'](header=header, height=h, width=w, encoding=encoding,
                                      is_bigendian=int(big), step=rows.shape[1],
                                      data=np.ascontiguousarray(rows).reshape(-1))


def compressed(payload: bytes, fmt: str) -> Any:
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=0),
                                      frame_id='')
    return T['sensor_msgs/msg/CompressedImage'](header=header, format=fmt,
                                                data=np.frombuffer(payload, np.uint8).copy())


SAME = (6, 8)


@pytest.mark.parametrize(('encoding', 'pixels', 'expected'), [
    ('rgb8', RGB, RGB),
    ('bgr8', RGB[..., ::-1], RGB),
    ('rgba8', np.dstack([RGB, np.full((6, 8), 7, np.uint8)]), RGB),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full((6, 8), 7, np.uint8)]), RGB),
    ('mono8', RGB[..., :1], np.repeat(RGB[..., :1], 3, axis=2)),
    ('mono16', DEPTH[..., None], np.repeat((DEPTH >> 8).astype(np.uint8)[..., None], 3, 2)),
    ('16UC1', DEPTH[..., None], np.repeat((DEPTH >> 8).astype(np.uint8)[..., None], 3, 2)),
])
@pytest.mark.parametrize('pad', [0, 5])
def test_raw_color_encodings_decode_exactly(
    encoding: str, pixels: np.ndarray, expected: np.ndarray, pad: int
) -> None:
    out = decode_image(raw_image(pixels, encoding, pad=pad), size=SAME)
    assert out.dtype == np.uint8
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize('big', [False, True])
@pytest.mark.parametrize('encoding', ['16UC1', 'mono16'])
def test_raw_16bit_depth_honours_endianness(encoding: str, big: bool) -> None:
    out = decode_image(raw_image(DEPTH[..., None], encoding, big=big, pad=3), size=SAME,
                       depth=True)
    assert out.dtype == np.uint16
    assert out.shape == (6, 8, 1)
    np.testing.assert_array_equal(out[..., 0], DEPTH)


def test_32fc1_metres_become_millimetres() -> None:
    metres = np.array([[0.5, 1.2344, np.nan, 70.0]], np.float32)
    out = decode_image(raw_image(metres[..., None], '32FC1'), size=(1, 4), depth=True)
    assert out[0, :, 0].tolist() == [500, 1234, 0, 65535]  # NaN invalid -> 0, clipped to 16 bit
    with pytest.raises(ImageDecodeError, match='32FC1 is depth'):
        decode_image(raw_image(metres[..., None], '32FC1'), size=(1, 4))


def test_png_and_jpeg_compressed() -> None:
    out = decode_image(compressed(encode_png(RGB), 'png'), size=SAME)
    np.testing.assert_array_equal(out, RGB)
    flat = np.zeros((16, 16, 3), np.uint8)
    flat[:] = (200, 40, 90)
    out = decode_image(compressed(encode_jpeg(flat), 'rgb8; jpeg compressed bgr8'),
                       size=(16, 16))
    assert np.abs(out.astype(int) - [200, 40, 90]).max() <= 3  # JPEG is lossy, RGB order kept


def test_compressed_depth_png_keeps_16_bits() -> None:
    msg = compressed(compressed_depth_png(DEPTH), '16UC1; compressedDepth png')
    out = decode_image(msg, size=SAME, depth=True)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out[..., 0], DEPTH)


def test_compressed_depth_32fc1_inverse_depth() -> None:
    quant_a, quant_b = 100.0, 10.0  # compressed_depth_image_transport defaults
    metres = np.array([[0.5, 2.0, 0.0]])
    stored = np.where(metres > 0, quant_a / np.where(metres > 0, metres, 1) + quant_b, 0)
    payload = struct.pack('<iff', 0, quant_a, quant_b) + encode_png(stored.astype(np.uint16))
    out = decode_image(compressed(payload, '32FC1; compressedDepth png'), size=(1, 3),
                       depth=True)
    assert out[0, :, 0].tolist() == [500, 2000, 0]


def test_resize_uses_fixed_interpolation() -> None:
    big = RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = decode_image(raw_image(big, 'rgb8'), size=(12, 16))
    np.testing.assert_array_equal(out, cv2.resize(big, (16, 12), interpolation=cv2.INTER_AREA))
    depth = decode_image(raw_image(DEPTH[..., None], '16UC1'), size=(3, 4), depth=True)
    assert set(depth.reshape(-1).tolist()) <= set(DEPTH.reshape(-1).tolist())  # nearest only


def test_rclpy_style_fields() -> None:
    """rclpy hands ``data`` as array.array / bytes / list: same pixels as numpy."""
    ref = decode_image(raw_image(RGB, 'rgb8'), size=(3, 4))
    for conv in (lambda b: array.array('B', b), bytes, list):
        msg = SimpleNamespace(height=6, width=8, encoding='rgb8', is_bigendian=0, step=24,
                              data=conv(RGB.tobytes()))
        np.testing.assert_array_equal(decode_image(msg, size=(3, 4)), ref)
    cmsg = SimpleNamespace(format='png', data=array.array('B', encode_png(RGB)))
    np.testing.assert_array_equal(decode_image(cmsg, size=SAME), RGB)


def test_compressed_without_format_field_is_sniffed() -> None:
    msg = SimpleNamespace(data=encode_png(RGB))  # MCAP schemas cut down to `data` exist
    np.testing.assert_array_equal(decode_image(msg, size=SAME), RGB)


@pytest.mark.parametrize(('msg', 'match'), [
    (SimpleNamespace(height=2, width=2, encoding='yuv422', is_bigendian=0, step=4,
                     data=bytes(8)), "unknown image encoding 'yuv422'"),
    (SimpleNamespace(height=2, width=2, encoding='rgb8', is_bigendian=0, step=6,
                     data=bytes(5)), 'data has 5 bytes'),
    (SimpleNamespace(format='jpeg', data=bytes([0, 1, 2])), "format 'jpeg'.*neither JPEG nor PNG"),
    (SimpleNamespace(format='jpeg', data=b'\xff\xd8\xff' + bytes(20)), 'corrupt jpeg'),
])
def test_bad_images_raise_one_line_errors(msg: Any, match: str) -> None:
    with pytest.raises(ImageDecodeError, match=match) as info:
        decode_image(msg, size=(2, 2))
    assert '\n' not in str(info.value)


def test_joint_positions_reorder_by_name() -> None:
    msg = SimpleNamespace(name=['b', 'c', 'a'], position=array.array('d', [2.0, 3.0, 1.0]))
    assert joint_positions(msg, ['a', 'b', 'c']).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(IngestError, match=r"lacks joints \['d'\]"):
        joint_positions(msg, ['a', 'd'])
    with pytest.raises(IngestError, match='no joint names'):
        joint_positions(SimpleNamespace(name=[], position=[1.0]), ['a'])
    with pytest.raises(IngestError, match='without a name or position field'):
        joint_positions(SimpleNamespace(name=['a']), ['a'])
    with pytest.raises(IngestError, match='3 names but 2 positions'):
        joint_positions(SimpleNamespace(name=['a', 'b', 'c'], position=[1.0, 2.0]), ['a'])


def test_command_values_all_three_types() -> None:
    traj = SimpleNamespace(joint_names=['b', 'a'],
                           points=[SimpleNamespace(positions=[2.0, 1.0]),
                                   SimpleNamespace(positions=[9.0, 9.0])])
    assert command_values(traj, 'trajectory_msgs/msg/JointTrajectory', ['a', 'b']).tolist() == [
        1.0, 2.0]
    arr = SimpleNamespace(data=array.array('d', [4.0, 5.0]))
    assert command_values(arr, 'std_msgs/Float64MultiArray', ['a', 'b']).tolist() == [4.0, 5.0]
    with pytest.raises(IngestError, match='has 2 values, the profile names 3'):
        command_values(arr, 'std_msgs/msg/Float64MultiArray', ['a', 'b', 'c'])
    leader = SimpleNamespace(name=['b', 'a'], position=[7.0, 6.0])
    assert command_values(leader, 'sensor_msgs/msg/JointState', ['a', 'b']).tolist() == [6.0, 7.0]
    with pytest.raises(IngestError, match='no points'):
        command_values(SimpleNamespace(joint_names=['a'], points=[]),
                       'trajectory_msgs/msg/JointTrajectory', ['a'])


def test_extra_state_values() -> None:
    v3 = T['geometry_msgs/msg/Vector3']
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                                      frame_id='')
    pose = T['geometry_msgs/msg/PoseStamped'](header=header, pose=T['geometry_msgs/msg/Pose'](
        position=T['geometry_msgs/msg/Point'](x=1.0, y=2.0, z=3.0),
        orientation=T['geometry_msgs/msg/Quaternion'](x=0.0, y=0.0, z=0.6, w=0.8)))
    assert extra_state_values(pose, 'geometry_msgs/msg/PoseStamped').tolist() == [
        1.0, 2.0, 3.0, 0.0, 0.0, 0.6, 0.8]
    wrench = T['geometry_msgs/msg/WrenchStamped'](header=header, wrench=T[
        'geometry_msgs/msg/Wrench'](force=v3(x=1.0, y=2.0, z=3.0), torque=v3(x=4.0, y=5.0, z=6.0)))
    assert extra_state_values(wrench, 'geometry_msgs/WrenchStamped').tolist() == [
        1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert extra_state_values(v3(x=1.0, y=0.0, z=-1.0), 'geometry_msgs/msg/Vector3').tolist() == [
        1.0, 0.0, -1.0]


@pytest.mark.ros
def test_real_rclpy_messages_decode_like_bag_messages() -> None:
    """The policy node hands rclpy messages (array.array fields) to the same functions."""
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    traj_msgs = pytest.importorskip('trajectory_msgs.msg')
    img = sensor_msgs.Image(height=6, width=8, encoding='bgr8', is_bigendian=0, step=24)
    img.data = RGB[..., ::-1].tobytes()
    np.testing.assert_array_equal(decode_image(img, size=SAME), RGB)
    comp = sensor_msgs.CompressedImage(format='16UC1; compressedDepth png')
    comp.data = compressed_depth_png(DEPTH)
    np.testing.assert_array_equal(decode_image(comp, size=SAME, depth=True)[..., 0], DEPTH)
    js = sensor_msgs.JointState(name=['b', 'a'], position=[2.0, 1.0])
    assert joint_positions(js, ['a', 'b']).tolist() == [1.0, 2.0]
    point = traj_msgs.JointTrajectoryPoint(positions=[4.0, 3.0])
    traj = traj_msgs.JointTrajectory(joint_names=['b', 'a'], points=[point])
    assert command_values(traj, 'trajectory_msgs/msg/JointTrajectory', ['a', 'b']).tolist() == [
        3.0, 4.0]
