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


_KNOWN: list[tuple[bytes, tuple[str, ...]]] = []  # name blocks seen, newest first


def decode_joint_state(data: bytes | memoryview | Any) -> JointState | None:
    """Header stamp, names and positions of a CDR ``JointState``; None if not plain LE CDR."""
    body = bytes(data)
    end = len(body)
    if end < 20 or body[1] != 0x01:  # CDR_LE / PL_CDR_LE encapsulation only
        return None
    try:
        sec, nanosec = _STAMP.unpack_from(body, 4)
        (flen,) = _U32.unpack_from(body, 12)
        pos = 16 + flen
        if flen < 1 or pos > end:
            return None
        frame_id = body[16:pos - 1].decode()
        start = pos + (-(pos - 4) % 4)  # CDR aligns relative to the byte after the 4-byte header
        known = next((k for k in _KNOWN if body.startswith(k[0], start)), None)
        if known is not None:
            names = known[1]
            pos = start + len(known[0])
        else:
            (count,) = _U32.unpack_from(body, start)
            pos = start + 4
            for _ in range(count):
                pos += -(pos - 4) % 4
                (slen,) = _U32.unpack_from(body, pos)
                pos += 4 + slen
                if slen < 1 or pos > end:
                    return None
            block = body[start:pos]
            names = _split_names(block, count)
            if len(_KNOWN) < 64:
                _KNOWN.insert(0, (block, names))
        pos += -(pos - 4) % 4
        (npos,) = _U32.unpack_from(body, pos)
        pos += 4
        if npos:
            pos += -(pos - 4) % 8
        if pos + 8 * npos > end:
            return None
        position = np.frombuffer(body, np.float64, npos, pos) if npos else _EMPTY
    except (struct.error, UnicodeDecodeError, ValueError):
        return None
    return JointState(Header(Stamp(sec, nanosec), frame_id), names, position)


def _split_names(block: bytes, count: int) -> tuple[str, ...]:
    """The strings of a name block (its first 4 bytes are the count; offsets are 4-aligned
    because the block starts 4-aligned)."""
    out = []
    pos = 4
    for _ in range(count):
        pos += -pos % 4
        (slen,) = _U32.unpack_from(block, pos)
        out.append(block[pos + 4:pos + 3 + slen].decode())
        pos += 4 + slen
    return tuple(out)
