"""The lean JointState decoder gives what rosbags gives (stamp, frame, names, positions)."""

from __future__ import annotations

import numpy as np
import pytest
from bagfactory import ROS2

from bag_tools.fastcdr import decode_joint_state

JS = 'sensor_msgs/msg/JointState'


def cdr(frame: str, names: list[str], pos: list[float], vel: int) -> bytes:
    t = ROS2.types
    msg = t[JS](header=t['std_msgs/msg/Header'](
        stamp=t['builtin_interfaces/msg/Time'](sec=17, nanosec=99), frame_id=frame),
        name=names, position=np.asarray(pos, np.float64),
        velocity=np.ones(vel), effort=np.zeros(0))
    return bytes(ROS2.serialize_cdr(msg, JS))


@pytest.mark.parametrize('frame', ['', 'a', 'ab', 'abc', 'base_link'])
@pytest.mark.parametrize(('names', 'pos'), [
    (['a', 'bb', 'ccc'], [1.0, 2.0, 3.0]), (['j' * 5], [0.5]), ([], []), (['x', 'y'], []),
    (['a', 'bb', 'ccc'], [4.0, -5.0, 6.25]),
])
@pytest.mark.parametrize('pad', [b'', b'\0' * 5])
def test_same_as_rosbags(frame: str, names: list[str], pos: list[float], pad: bytes) -> None:
    data = cdr(frame, names, pos, len(pos))
    ref = ROS2.deserialize_cdr(data, JS)
    got = decode_joint_state(data + pad)
    assert got is not None
    assert got.header.stamp == (17, 99)
    assert got.header.frame_id == ref.header.frame_id
    assert list(got.name) == list(ref.name)
    np.testing.assert_array_equal(got.position, ref.position)


def test_not_cdr_le_or_truncated_falls_back() -> None:
    data = cdr('f', ['a', 'b'], [1.0, 2.0], 0)
    assert decode_joint_state(b'\x00\x00' + data[2:]) is None  # big-endian CDR
    assert decode_joint_state(data[:30]) is None
