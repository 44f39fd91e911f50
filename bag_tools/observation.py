"""Message → numpy: the ONE code path for ingestion (rosbags messages) and serving (rclpy).

Everything here is duck-typed on field names, so it takes messages deserialized by rosbags
(``data`` is a numpy array) and live rclpy messages (``data`` is ``array.array``, ``bytes`` or a
list) alike.

Images come out as ``uint8 [H, W, 3]`` RGB, depth as ``uint16 [H, W, 1]`` millimetres. Color is
resized with ``cv2.INTER_AREA`` and depth with ``cv2.INTER_NEAREST`` (never blend depth across an
edge) — always, so training and serving see the same pixels. Two fixed shortcuts keep a large
frame cheap: a JPEG is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the target
still fits, and a raw frame is first area-averaged by the largest whole factor that divides it.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bag_tools.errors import ImageDecodeError, IngestError
from bag_tools.profile import CONTROLLER_STATE, normalize_msgtype

__all__ = [
    'COLOR_ENCODINGS',
    'DEPTH_ENCODINGS',
    'MissingJointsError',
    'command_values',
    'controller_point',
    'decode_image',
    'extra_state_values',
    'image_channels',
    'image_dims',
    'joint_positions',
    'resize_color',
    'resize_frame',
    'resize_image',
    'stamp_ns',
]

COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'mono16', '16UC1')
DEPTH_ENCODINGS = ('mono16', '16UC1', '32FC1')

_CHANNELS = {'rgb8': 3, 'bgr8': 3, 'rgba8': 4, 'bgra8': 4, 'mono8': 1, 'mono16': 1, '16UC1': 1,
             '32FC1': 1, '8UC3': 3, '8UC1': 1}
_DTYPES: dict[str, npt.DTypeLike] = {'mono16': np.uint16, '16UC1': np.uint16,
                                     '32FC1': np.float32}
_COMPRESSED_DEPTH_HEADER = 12  # int32 format + float32 depthQuantA, depthQuantB


def _buffer(data: Any) -> npt.NDArray[np.uint8]:
    """A message's ``data`` field (numpy, bytes, array.array or list) as a flat uint8 array."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.dtype != np.uint8 else data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, np.uint8)
    try:
        return np.frombuffer(memoryview(data).cast('B'), np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def stamp_ns(msg: Any) -> int | None:
    """``header.stamp`` in ns, or None when the message has no header."""
    header = getattr(msg, 'header', None)
    if header is None:
        return None
    stamp = header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(getattr(stamp, 'nanosec', 0) or getattr(
        stamp, 'nsec', 0))


# -- images ---------------------------------------------------------------------------------

def decode_image(
    msg: Any, *, size: tuple[int, int], depth: bool = False
) -> npt.NDArray[Any]:
    """Decode ``sensor_msgs/Image`` or ``CompressedImage`` and resize to ``size`` (H, W).

    Returns ``uint8 [H, W, 3]`` RGB, or ``uint16 [H, W, 1]`` (mm) when ``depth``.
    """
    if hasattr(msg, 'encoding') and hasattr(msg, 'step'):
        img = _decode_raw(msg, depth=depth)
    else:
        img = _decode_compressed(msg, depth=depth, size=size)
    return _resize(img, size, depth=depth)


def _decode_raw(msg: Any, *, depth: bool) -> npt.NDArray[Any]:
    encoding = str(msg.encoding)
    if encoding not in _CHANNELS:
        msg_ = (f'unknown image encoding {encoding!r} (supported: '
                f'{", ".join(sorted(set(COLOR_ENCODINGS) | set(DEPTH_ENCODINGS)))})')
        raise ImageDecodeError(msg_)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    channels = _CHANNELS[encoding]
    dtype = np.dtype(_DTYPES.get(encoding, np.uint8))
    row = width * channels * dtype.itemsize
    buf = _buffer(msg.data)
    if height == 0 or width == 0 or step < row or len(buf) < step * (height - 1) + row:
        msg_ = (f'image {encoding} {width}x{height} step {step}: data has {len(buf)} bytes, '
                f'expected {step * height}')
        raise ImageDecodeError(msg_)
    if len(buf) < step * height:  # last row without its padding
        buf = np.concatenate([buf, np.zeros(step * height - len(buf), np.uint8)])
    rows = buf[: step * height].reshape(height, step)[:, :row]
    img = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels)
    big = bool(msg.is_bigendian)
    if dtype.itemsize > 1 and big != (sys.byteorder == 'big'):
        img = img.byteswap()
    if depth:
        return _to_depth(img, encoding)
    if encoding == '32FC1':
        msg_ = 'image encoding 32FC1 is depth; set depth: true for this camera in the profile'
        raise ImageDecodeError(msg_)
    if dtype.itemsize == 2:  # 16-bit mono as color: keep the high byte
        img = (img >> 8).astype(np.uint8)
    if encoding in ('rgb8', '8UC3'):
        return img
    if encoding == 'bgr8':
        return np.ascontiguousarray(img[..., ::-1])
    if encoding == 'rgba8':
        return np.ascontiguousarray(img[..., :3])
    if encoding == 'bgra8':
        return np.ascontiguousarray(img[..., 2::-1])
    return np.repeat(img, 3, axis=2)


def _to_depth(img: npt.NDArray[Any], encoding: str) -> npt.NDArray[np.uint16]:
    if encoding in ('mono16', '16UC1'):
        return img.astype(np.uint16, copy=False)
    if encoding == '32FC1':
        metres = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        mm = np.clip(np.rint(metres * 1000.0), 0, 65535)
        return mm.astype(np.uint16)
    msg = f'image encoding {encoding!r} is not depth (expected 16UC1, mono16 or 32FC1)'
    raise ImageDecodeError(msg)


def _jpeg_size(buf: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker, or None if not found."""
    data = buf.tobytes() if len(buf) < 65536 else bytes(buf[:65536])
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2:i + 4], 'big')
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack('>HH', data[i + 5:i + 9])
            return h, w
        i += 2 + length
    return None


def _png_size(buf: npt.NDArray[np.uint8]) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk, or None."""
    head = buf[:24].tobytes()
    if len(head) == 24 and head[:8] == b'\x89PNG\r\n\x1a\n' and head[12:16] == b'IHDR':
        return int.from_bytes(head[20:24], 'big'), int.from_bytes(head[16:20], 'big')
    return None


def image_dims(msg: Any) -> tuple[int, int] | None:
    """``(height, width)`` of an ``Image`` or ``CompressedImage`` without decoding it (PNG/JPEG
    headers only); None when a compressed payload is neither (the decoder then rejects it)."""
    if hasattr(msg, 'encoding') and hasattr(msg, 'height'):
        return int(msg.height), int(msg.width)
    buf = _buffer(msg.data)
    if 'compresseddepth' in str(getattr(msg, 'format', '')).lower().replace(' ', ''):
        buf = buf[_COMPRESSED_DEPTH_HEADER:]
    if buf[:2].tobytes() == b'\xff\xd8':
        return _jpeg_size(buf)
    return _png_size(buf)


_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
            (2, cv2.IMREAD_REDUCED_COLOR_2))


def _color_flag(kind: str, buf: npt.NDArray[np.uint8], size: tuple[int, int]) -> int:
    """Decode a JPEG at the smallest DCT scale that is still at least ``size``."""
    if kind != 'jpeg':
        return cv2.IMREAD_COLOR
    src = _jpeg_size(buf)
    if src is None:
        return cv2.IMREAD_COLOR
    for factor, flag in _REDUCED:
        if src[0] // factor >= size[0] and src[1] // factor >= size[1]:
            return flag
    return cv2.IMREAD_COLOR


def _decode_compressed(
    msg: Any, *, depth: bool, size: tuple[int, int]
) -> npt.NDArray[Any]:
    fmt = str(getattr(msg, 'format', '') or '')
    buf = _buffer(msg.data)
    if 'compresseddepth' in fmt.lower().replace(' ', ''):
        return _decode_compressed_depth(buf, fmt, depth=depth)
    kind = _sniff(buf)
    if kind is None:
        msg_ = (f'CompressedImage format {fmt or "(none)"!r}: payload of {len(buf)} bytes is '
                'neither JPEG nor PNG')
        raise ImageDecodeError(msg_)
    flag = cv2.IMREAD_UNCHANGED if depth else _color_flag(kind, buf, size)
    img = cv2.imdecode(buf, flag)
    if img is None:
        msg_ = f'CompressedImage format {fmt or kind!r}: corrupt {kind} payload ({len(buf)} bytes)'
        raise ImageDecodeError(msg_)
    if depth:
        if img.ndim != 2 or img.dtype != np.uint16:
            msg_ = (f'CompressedImage format {fmt or kind!r}: depth camera needs a 16-bit '
                    f'single-channel image, got {img.dtype} with shape {img.shape}')
            raise ImageDecodeError(msg_)
        return img[..., None]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _sniff(buf: npt.NDArray[np.uint8]) -> str | None:
    head = bytes(buf[:8])
    if head[:3] == b'\xff\xd8\xff':
        return 'jpeg'
    if head == b'\x89PNG\r\n\x1a\n':
        return 'png'
    return None


def _decode_compressed_depth(
    buf: npt.NDArray[np.uint8], fmt: str, *, depth: bool
) -> npt.NDArray[np.uint16]:
    """``compressed_depth_image_transport``: 12-byte ConfigHeader, then a 16-bit PNG."""
    if not depth:
        msg = f'CompressedImage format {fmt!r} is depth; set depth: true for this camera'
        raise ImageDecodeError(msg)
    if 'rvl' in fmt.lower():
        msg = f'CompressedImage format {fmt!r}: RVL compressedDepth is not supported (use png)'
        raise ImageDecodeError(msg)
    payload = buf[_COMPRESSED_DEPTH_HEADER:]
    if len(buf) <= _COMPRESSED_DEPTH_HEADER or _sniff(payload) != 'png':
        msg = (f'CompressedImage format {fmt!r}: expected a 12-byte header and a PNG, got '
               f'{len(buf)} bytes')
        raise ImageDecodeError(msg)
    img = cv2.imdecode(payload, cv2.IMREAD_UNCHANGED)
    if img is None or img.dtype != np.uint16 or img.ndim != 2:
        msg = f'CompressedImage format {fmt!r}: PNG payload is not 16-bit single channel'
        raise ImageDecodeError(msg)
    source = fmt.split(';')[0].strip()
    if source == '32FC1':  # quantized inverse depth: d = A / (v - B), 0 = invalid
        quant_a, quant_b = struct.unpack('<ff', bytes(buf[4:12]))
        v = img.astype(np.float64)
        with np.errstate(divide='ignore', invalid='ignore'):
            metres = np.where(v > 0, quant_a / (v - quant_b), 0.0)
        mm = np.clip(np.rint(np.nan_to_num(metres, nan=0.0, posinf=0.0) * 1000.0), 0, 65535)
        out: npt.NDArray[np.uint16] = mm.astype(np.uint16)[..., None]
        return out
    depth16: npt.NDArray[np.uint16] = img.astype(np.uint16, copy=False)[..., None]
    return depth16


def image_channels(depth: bool) -> int:
    """Channels of a decoded frame: depth is ``[H, W, 1]`` (uint16 mm), color ``[H, W, 3]`` RGB."""
    return 1 if depth else 3


def resize_image(
    img: npt.NDArray[Any], size: tuple[int, int], *, depth: bool
) -> npt.NDArray[Any]:
    """The one resize rule, for ingest and serving alike: ``[h, w(, C)]`` -> ``[H, W, C]``.

    Color is area-averaged (``cv2.INTER_AREA``); depth takes the nearest sample
    (``cv2.INTER_NEAREST``) so that no depth is blended across an edge.
    """
    return _resize(img, size, depth=depth)


def resize_color(img: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """An RGB ``uint8 [h, w, 3]`` frame resized to ``size`` (H, W) the way every color image
    is."""
    out: npt.NDArray[np.uint8] = _resize(img, size, depth=False)
    return out


def resize_frame(img: npt.NDArray[Any], size: tuple[int, int], *, depth: bool) -> npt.NDArray[Any]:
    """A decoded video frame -- ``uint8 [h, w, 3]`` RGB, or ``uint16 [h, w]`` depth (mm) -- at
    ``size`` (H, W), exactly as a raw ``rgb8`` / ``16UC1`` image message of it would be:
    ``uint8 [H, W, 3]`` or ``uint16 [H, W, 1]``."""
    if depth:
        img = np.ascontiguousarray(img, dtype=np.uint16).reshape(img.shape[0], img.shape[1], 1)
    return _resize(img, size, depth=depth)


def _resize(img: npt.NDArray[Any], size: tuple[int, int], *, depth: bool) -> npt.NDArray[Any]:
    h, w = size
    if img.shape[:2] != (h, w):
        if depth:
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        else:
            src_h, src_w = img.shape[:2]
            for f in (8, 4, 2):  # whole-factor area averaging first: exact and fast
                if src_h % f == 0 and src_w % f == 0 and src_h // f >= h and src_w // f >= w:
                    img = cv2.resize(img, (src_w // f, src_h // f), interpolation=cv2.INTER_AREA)
                    break
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if img.ndim == 2:
        img = img[..., None]
    return np.ascontiguousarray(img)


# -- joints, commands, extra observations ---------------------------------------------------

class MissingJointsError(IngestError):
    """A message does not name joints the profile wants (``missing``; it names ``have``)."""

    def __init__(self, text: str, missing: Sequence[str], have: Sequence[str]) -> None:
        super().__init__(text)
        self.missing = tuple(missing)
        self.have = tuple(have)


#: (message names, wanted names, allow_missing) -> index into [*values, nan]; a recorder sends
#: the same name list in every message, so the reorder is worked out once per list.
_ORDER: dict[tuple[tuple[str, ...], tuple[str, ...], bool], npt.NDArray[np.intp]] = {}


def _reorder(
    names: Sequence[str], values: Any, wanted: Sequence[str], what: str, *,
    allow_missing: bool = False,
) -> npt.NDArray[np.float64]:
    key = (tuple(names), tuple(wanted), allow_missing)
    order = _ORDER.get(key)
    if order is not None:
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(vals) == len(key[0]):
            if allow_missing and order.max(initial=-1) >= len(vals):
                return np.append(vals, np.nan)[order]
            return vals[order]
    names = list(names)
    vals = np.asarray(values, dtype=np.float64).reshape(-1)
    if not names:
        msg = f'{what} has no joint names; cannot order its values by name'
        raise IngestError(msg)
    if len(vals) < len(names):
        msg = f'{what} has {len(names)} names but {len(vals)} positions'
        raise IngestError(msg)
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in index]
    if missing and not allow_missing:
        msg = f'{what} lacks joints {missing} (it has {names})'
        raise MissingJointsError(msg, missing, names)
    if len(vals) == len(names) and len(_ORDER) < 4096:
        _ORDER[key] = np.asarray([index.get(n, len(vals)) for n in wanted], np.intp)
    if missing:
        padded = np.append(vals, np.nan)
        return padded[[index.get(n, len(vals)) for n in wanted]]
    return vals[[index[n] for n in wanted]]


def joint_positions(
    msg: Any, joints: Sequence[str], *, allow_missing: bool = False
) -> npt.NDArray[np.float64]:
    """``sensor_msgs/JointState`` positions in ``joints`` order, matched by ``msg.name``.

    ``allow_missing``: joints the message does not name are NaN (arm and gripper drivers that
    publish separate messages on one topic); otherwise they are an error.
    """
    names, position = getattr(msg, 'name', None), getattr(msg, 'position', None)
    if names is None or position is None:
        msg_ = 'JointState without a name or position field (a cut-down schema?)'
        raise IngestError(msg_)
    return _reorder(names, position, joints, 'JointState', allow_missing=allow_missing)


#: Controller-state fields in the order ``auto`` tries them (Jazzy names first: on Humble the
#: deprecated desired/actual are sometimes left empty).
_AUTO_FIELDS = {'state': ('feedback', 'actual'), 'action': ('reference', 'desired')}
_SYNONYM = {'actual': 'feedback', 'feedback': 'actual', 'desired': 'reference',
            'reference': 'desired'}


def controller_point(msg: Any, role: str, field: str = 'auto') -> tuple[str, Any]:
    """The ``JointTrajectoryPoint`` of a ``control_msgs/JointTrajectoryControllerState`` that
    gives the state (``role='state'``: actual/feedback) or the action (desired/reference/output).

    ``field='auto'`` takes the first of the role's fields with positions (both the Humble and
    the Jazzy field sets); a named field must be present and non-empty. Returns (field, point).
    """
    tried = _AUTO_FIELDS[role] if field == 'auto' else (field,)
    for name in tried:
        point = getattr(msg, name, None)
        if point is not None and len(point.positions):
            return name, point
    present = [f for f in ('actual', 'feedback', 'desired', 'reference', 'output')
               if getattr(msg, f, None) is not None and len(getattr(msg, f).positions)]
    if field == 'auto':
        msg_ = (f'JointTrajectoryControllerState has no {" or ".join(tried)} positions '
                f'(non-empty fields: {present or "none"})')
    else:
        absent = getattr(msg, field, None) is None
        hint = f'; try {_SYNONYM[field]} or auto' if field in _SYNONYM else ''
        msg_ = (f'JointTrajectoryControllerState field {field} is '
                f'{"not in this distro" if absent else "empty"} (non-empty fields: '
                f'{present or "none"}){hint}')
    raise IngestError(msg_)


def controller_positions(
    msg: Any, joints: Sequence[str], role: str, field: str = 'auto', *,
    allow_missing: bool = False,
) -> npt.NDArray[np.float64]:
    """A controller state's state or action positions in ``joints`` order (by ``joint_names``)."""
    name, point = controller_point(msg, role, field)
    return _reorder(msg.joint_names, point.positions, joints,
                    f'JointTrajectoryControllerState.{name}', allow_missing=allow_missing)


def trajectory_points(
    msg: Any, names: Sequence[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Every point of a ``JointTrajectory``: ``time_from_start`` (ns) and positions [P, D]."""
    if not len(msg.points):
        msg_ = 'JointTrajectory has no points'
        raise IngestError(msg_)
    offsets = np.asarray([int(p.time_from_start.sec) * 1_000_000_000
                          + int(getattr(p.time_from_start, 'nanosec', 0)
                                or getattr(p.time_from_start, 'nsec', 0))
                          for p in msg.points], np.int64)
    rows = np.stack([_reorder(msg.joint_names, p.positions, names, 'JointTrajectory')
                     for p in msg.points])
    return offsets, rows


def command_values(
    msg: Any, msgtype: str, names: Sequence[str], *, field: str = 'auto'
) -> npt.NDArray[np.float64]:
    """A command message as a vector in ``names`` order.

    ``JointTrajectory``: the first point's positions, reordered by ``joint_names`` (the
    ingester picks, of several points, the one nearest each grid time: ``trajectory_points``);
    ``Float64MultiArray``: ``data`` as is (its length must match ``names``);
    ``JointState`` (leader arm): positions reordered by ``name``;
    ``JointTrajectoryControllerState``: the desired/reference (or ``field``) point;
    ``Twist[Stamped]`` (cmd_vel): linear then angular.
    """
    msgtype = normalize_msgtype(msgtype)
    if msgtype == 'trajectory_msgs/msg/JointTrajectory':
        if not len(msg.points):
            msg_ = 'JointTrajectory has no points'
            raise IngestError(msg_)
        return _reorder(msg.joint_names, msg.points[0].positions, names, 'JointTrajectory')
    if msgtype == 'std_msgs/msg/Float64MultiArray':
        data = np.asarray(msg.data, dtype=np.float64).reshape(-1)
        if len(data) != len(names):
            msg_ = f'Float64MultiArray has {len(data)} values, the profile names {len(names)}'
            raise IngestError(msg_)
        return data
    if msgtype == 'sensor_msgs/msg/JointState':
        return _reorder(msg.name, msg.position, names, 'JointState')
    if msgtype == CONTROLLER_STATE:
        return controller_positions(msg, names, 'action', field)
    if msgtype in ('geometry_msgs/msg/Twist', 'geometry_msgs/msg/TwistStamped'):
        return extra_state_values(msg, msgtype)
    msg_ = (f'command type {msgtype} is not supported (JointTrajectory, Float64MultiArray, '
            'JointState, JointTrajectoryControllerState, Twist)')
    raise IngestError(msg_)


def extra_state_values(
    msg: Any, msgtype: str, *, joints: Sequence[str] = ()
) -> npt.NDArray[np.float64]:
    """Flatten an extra observation (its dimensions: ``bag_tools.extras``), or a
    ``JointState`` (another topic's joints, e.g. a gripper) in ``joints`` order."""
    from bag_tools.extras import extra_type

    msgtype = normalize_msgtype(msgtype)
    kind = extra_type(msgtype)
    if kind is None or kind.frames:
        msg_ = f'extra_state type {msgtype} is not supported here'
        raise IngestError(msg_)
    if kind.named:
        if not joints:
            msg_ = 'a JointState extra observation needs its joints (ExtraStateSpec.joints)'
            raise IngestError(msg_)
        return joint_positions(msg, joints)
    return np.asarray(kind.extract(msg), dtype=np.float64)
