"""A lean decoder for the one message type every robot bag is full of: ``sensor_msgs/JointState``.

rosbags' generic CDR deserializer builds every field; ingestion needs the header stamp, the
names and the positions. ``decode_joint_state`` reads just those from little-endian CDR
(rosbag2), remembers each distinct name block (a recorder sends the same names every time),
ignores trailing padding bytes, and returns None on anything unexpected, so the caller falls
back to rosbags. The returned object has the attributes the rest of bag_tools reads
(``header.stamp.sec/nanosec``, ``name``, ``position``, ``velocity``, ``effort``).
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ['decode_joint_state']

_U32 = struct.Struct('<I')
_STAMP = struct.Struct('<iI')
_EMPTY = np.zeros(0, np.float64)
_NAMES: dict[bytes, tuple[str, ...]] = {}


class Stamp(NamedTuple):
    sec: int
    nanosec: int


class Header(NamedTuple):
    stamp: Stamp
    frame_id: str


class JointState(NamedTuple):
    header: Header
    name: tuple[str, ...]
    position: npt.NDArray[np.float64]
    velocity: npt.NDArray[np.float64] = _EMPTY
    effort: npt.NDArray[np.float64] = _EMPTY


def _align(pos: int, n: int) -> int:
    return pos + (-pos % n)


def decode_joint_state(data: bytes | memoryview | Any) -> JointState | None:
    """Header stamp, names and positions of a CDR ``JointState``; None if not plain LE CDR."""
    buf = memoryview(data)
    if len(buf) < 20 or buf[1] != 0x01:  # CDR_LE / PL_CDR_LE encapsulation only
        return None
    body = buf[4:]
    end = len(body)
    try:
        sec, nanosec = _STAMP.unpack_from(body, 0)
        (flen,) = _U32.unpack_from(body, 8)
        pos = 12 + flen
        if flen < 1 or pos > end:
            return None
        frame_id = bytes(body[12:pos - 1]).decode()
        pos = _align(pos, 4)
        (count,) = _U32.unpack_from(body, pos)
        start = pos
        pos += 4
        for _ in range(count):
            pos = _align(pos, 4)
            (slen,) = _U32.unpack_from(body, pos)
            pos += 4 + slen
            if slen < 1 or pos > end:
                return None
        block = bytes(body[start:pos])
        names = _NAMES.get(block)
        if names is None:
            names = _split_names(block, count)
            if len(_NAMES) < 1024:
                _NAMES[block] = names
        pos = _align(pos, 4)
        (npos,) = _U32.unpack_from(body, pos)
        pos = _align(pos + 4, 8) if npos else pos + 4
        if pos + 8 * npos > end:
            return None
        position = np.frombuffer(body, np.float64, npos, pos).copy() if npos else _EMPTY
    except (struct.error, UnicodeDecodeError, ValueError):
        return None
    return JointState(Header(Stamp(sec, nanosec), frame_id), names, position)


def _split_names(block: bytes, count: int) -> tuple[str, ...]:
    out = []
    pos = 4
    for _ in range(count):
        pos = _align(pos, 4)
        (slen,) = _U32.unpack_from(block, pos)
        out.append(block[pos + 4:pos + 3 + slen].decode())
        pos += 4 + slen
    return tuple(out)
