"""ROS message <-> numpy helpers that serving needs beyond ``bag_tools.observation``.

Decoding images, joint states and extra observations is *not* here: the node calls
``bag_tools.observation`` (the code ingestion uses), so training and serving see the same values.
This module only reads an image's source size without decoding it, resolves message classes by
name, and builds the command messages.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Duration
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from bag_tools.profile import normalize_msgtype
from ptr_core.errors import PtrError

__all__ = ['forward_command', 'image_dims', 'message_class', 'trajectory_command']

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_COMPRESSED_DEPTH_HEADER = 12


def _bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, np.ndarray):
        return data.tobytes()
    try:
        return memoryview(data).cast('B').tobytes()
    except TypeError:
        return bytes(data)


def _png_dims(buf: bytes) -> tuple[int, int] | None:
    if len(buf) >= 24 and buf[:8] == b'\x89PNG\r\n\x1a\n' and buf[12:16] == b'IHDR':
        return int.from_bytes(buf[20:24], 'big'), int.from_bytes(buf[16:20], 'big')
    return None


def _jpeg_dims(buf: bytes) -> tuple[int, int] | None:
    if buf[:2] != b'\xff\xd8':
        return None
    i = 2
    while i + 9 < len(buf):
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(buf[i + 2:i + 4], 'big')
        if marker in _JPEG_SOF:
            return int.from_bytes(buf[i + 5:i + 7], 'big'), int.from_bytes(buf[i + 7:i + 9], 'big')
        i += 2 + length
    return None


def image_dims(msg: Any) -> tuple[int, int] | None:
    """``(height, width)`` of an ``Image`` or ``CompressedImage`` (PNG/JPEG header only).

    None when a compressed payload is neither PNG nor JPEG (the decoder then rejects it).
    """
    if hasattr(msg, 'encoding') and hasattr(msg, 'height'):
        return int(msg.height), int(msg.width)
    buf = _bytes(msg.data)
    if 'compresseddepth' in str(getattr(msg, 'format', '')).lower().replace(' ', ''):
        buf = buf[_COMPRESSED_DEPTH_HEADER:]
    return _png_dims(buf) or _jpeg_dims(buf)


def message_class(msgtype: str) -> Any:
    """The rclpy class of ``pkg/msg/Type`` (or ``pkg/Type``)."""
    name = normalize_msgtype(msgtype)
    pkg, kind, cls = name.split('/')
    try:
        return getattr(importlib.import_module(f'{pkg}.{kind}'), cls)
    except (ImportError, AttributeError) as err:
        msg = f'message type {name} is not installed ({err}); install its ROS package'
        raise PtrError(msg) from err


def trajectory_command(
    names: Sequence[str], points: npt.NDArray[np.float64], dt: float
) -> JointTrajectory:
    """``points [N, D]``: point ``i`` is reached ``(i + 1) * dt`` after the message (stamp 0 =
    start on receipt, as ``joint_trajectory_controller`` reads it)."""
    msg = JointTrajectory()
    msg.joint_names = list(names)
    for i, row in enumerate(points):
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in row]
        t = (i + 1) * dt
        sec = int(t)
        point.time_from_start = Duration(sec=sec, nanosec=round((t - sec) * 1e9) % 10**9)
        msg.points.append(point)
    return msg


def forward_command(names: Sequence[str], values: npt.NDArray[np.float64]) -> Float64MultiArray:
    """One value per joint, in ``names`` order (``forward_position_controller``'s layout)."""
    msg = Float64MultiArray()
    msg.layout.dim = [MultiArrayDimension(label='joints', size=len(names), stride=len(names))]
    msg.data = [float(v) for v in values]
    return msg
