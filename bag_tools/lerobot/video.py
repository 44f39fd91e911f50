"""Video files with PyAV: decode the frames an episode uses at the profile's size, encode frames.

Decoding goes through ``bag_tools.video.iter_frames`` (the package's one PyAV decoder) and
``bag_tools.observation.resize_frame``, so a LeRobot frame is resized exactly as a bag's image
or a live camera message is. Any stream FFmpeg decodes works (h264, hevc, AV1 via
libdav1d/libaom, MPEG-4 part 2, vp9).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

import numpy as np
import numpy.typing as npt

from bag_tools.errors import ImageDecodeError
from bag_tools.lerobot.format import LeRobotError
from bag_tools.observation import resize_frame
from bag_tools.video import iter_frames

__all__ = ['DecodedFrames', 'VideoEncoder', 'decode_frames', 'raw_image']

log = logging.getLogger(__name__)


def raw_image(img: npt.NDArray[Any]) -> SimpleNamespace:
    """A decoded ``[H, W, 3] uint8`` RGB or ``[H, W] uint16`` depth array as a duck-typed
    ``sensor_msgs/Image`` for ``decode_image``."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    if img.dtype == np.uint16:
        return SimpleNamespace(encoding='16UC1', height=h, width=w, step=w * 2,
                               is_bigendian=0, data=img.reshape(-1).view(np.uint8))
    if img.ndim == 2 or img.shape[2] == 1:
        return SimpleNamespace(encoding='mono8', height=h, width=w, step=w, is_bigendian=0,
                               data=img.reshape(-1))
    return SimpleNamespace(encoding='rgb8', height=h, width=w, step=w * 3, is_bigendian=0,
                           data=img.reshape(-1))


class DecodedFrames(NamedTuple):
    """The frames matched to an episode's timestamps (``T`` rows)."""

    frames: npt.NDArray[Any]  # [T, H, W, C]
    valid: npt.NDArray[np.bool_]  # a frame within tolerance of the timestamp
    used: npt.NDArray[np.int64]  # decoded frame used per row (-1: none)
    offset_s: npt.NDArray[np.float64]  # |frame time - wanted time|, NaN where none
    decoded_times: npt.NDArray[np.float64]  # times of every decoded frame in the span

    @classmethod
    def none(cls, n: int, size: tuple[int, int], depth: bool) -> DecodedFrames:
        """``n`` rows without a frame: zeros, all invalid (a camera whose video is missing)."""
        h, w = size
        return cls(np.zeros((n, h, w, 1 if depth else 3), np.uint16 if depth else np.uint8),
                   np.zeros(n, bool), np.full(n, -1, np.int64), np.full(n, np.nan), np.zeros(0))


def decode_frames(
    path: Path,
    times_s: npt.NDArray[np.float64],
    *,
    size: tuple[int, int],
    depth: bool = False,
    tolerance_s: float,
) -> DecodedFrames:
    """Decode ``path`` once and pick, for each wanted time (seconds in the file, ascending),
    the nearest frame; frames further than ``tolerance_s`` leave that row invalid (zeros).

    Only frames inside the wanted span are resized and kept, so memory is bounded by the
    episode at the profile's size, not by the file.
    """
    import av  # noqa: F401  (missing: fail even for an empty span, as before)

    n = len(times_s)
    if n == 0:
        return DecodedFrames.none(0, size, depth)
    lo, hi = float(times_s[0]) - tolerance_s, float(times_s[-1]) + tolerance_s
    kept, decoded = _decode_span(path, lo, hi, size=size, depth=depth)
    out, _, index, offset, _ = DecodedFrames.none(n, size, depth)
    if len(decoded):
        order = np.argsort(decoded, kind='stable')
        decoded_sorted = decoded[order]
        right = np.clip(np.searchsorted(decoded_sorted, times_s), 0, len(decoded) - 1)
        left = np.clip(right - 1, 0, len(decoded) - 1)
        pick = np.where(np.abs(decoded_sorted[left] - times_s)
                        <= np.abs(decoded_sorted[right] - times_s), left, right)
        index = order[pick].astype(np.int64)
        offset = np.abs(decoded[index] - times_s)
    valid = np.isfinite(offset) & (offset <= tolerance_s)
    for row in np.flatnonzero(valid):
        out[row] = kept[int(index[row])]
    index[~valid] = -1
    return DecodedFrames(out, valid, index, offset, decoded)


def _decode_span(
    path: Path, lo: float, hi: float, *, size: tuple[int, int], depth: bool,
) -> tuple[list[npt.NDArray[Any]], npt.NDArray[np.float64]]:
    """The frames of ``path`` whose times (seconds from the stream's start) lie in [lo, hi],
    resized to ``size``, and their times, in decode order (``bag_tools.video.iter_frames``)."""
    kept: list[npt.NDArray[Any]] = []
    times: list[float] = []
    try:
        for _, t, arr in iter_frames(path, span=(lo, hi), depth=depth):
            kept.append(resize_frame(arr, size, depth=depth))
            times.append(float(t))  # type: ignore[arg-type]  # a span yields timed frames only
    except ImageDecodeError as err:
        raise LeRobotError(str(err)) from err
    return kept, np.asarray(times, np.float64)


class _SchedParam(ctypes.Structure):
    _fields_ = [('sched_priority', ctypes.c_int)]


def _libc() -> Any:
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    return libc


def thread_scheduling() -> tuple[int, int]:
    """The calling thread's policy and priority as the C library holds them.

    glibc keeps its own copy beside the kernel's (set by ``pthread_setschedparam``, which
    SVT-AV1 uses; ``os.sched_setscheduler`` changes only the kernel's). A thread this one starts
    with inherited scheduling takes glibc's copy, and Fast DDS re-applies it explicitly to every
    thread it starts, so a stale copy puts all of DDS at real-time even while the kernel shows
    this thread back at normal priority."""
    libc, policy, param = _libc(), ctypes.c_int(), _SchedParam()
    err = libc.pthread_getschedparam(ctypes.c_ulong(libc.pthread_self()), ctypes.byref(policy),
                                     ctypes.byref(param))
    if err:
        raise OSError(err, os.strerror(err))
    return policy.value, param.sched_priority


def _set_thread_scheduling(policy: int, priority: int) -> None:
    """Set the calling thread's policy in the kernel and in glibc's copy (thread_scheduling)."""
    libc = _libc()
    err = libc.pthread_setschedparam(ctypes.c_ulong(libc.pthread_self()), policy,
                                     ctypes.byref(_SchedParam(priority)))
    if err:
        raise OSError(err, os.strerror(err))


@contextmanager
def keep_scheduling() -> Iterator[None]:
    """Restore the calling thread's scheduling policy and priority on exit.

    SVT-AV1 (``libsvtav1``) switches the thread that opens it to real-time SCHED_FIFO 99 when it
    has the permission (root, as in containers and on many robot computers), and never switches
    back: afterwards that thread, and every process it starts (DDP ranks, nodes), runs above the
    kernel's own work. Seen here: two DDP ranks at FIFO 99 spinning on 2 cores, the allreduce
    threads starved, a 20 s test hung for 15 min; and, when only the kernel's view was restored,
    every DDS thread rclpy started later in the process at FIFO 99 (glibc's copy, see
    ``thread_scheduling``). Both views are restored. Every encoder call goes through this."""
    if not hasattr(os, 'sched_getscheduler'):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        wanted = (policy, param.sched_priority)
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param) or \
                thread_scheduling() != wanted:
            _set_thread_scheduling(*wanted)


@dataclass
class VideoEncoder:
    """Frames into one mp4 (PyAV), one frame per ``1 / fps``; episodes go back to back.

    ``crf`` and ``gop`` follow LeRobot's writer (a short GOP keeps random access cheap).
    Odd sizes, which 4:2:0 chroma cannot hold, are written as 4:4:4.
    """

    path: Path
    fps: float
    width: int
    height: int
    codec: str = 'libx264'
    crf: int = 18
    gop: int = 2

    def __post_init__(self) -> None:
        import av

        self.pix_fmt = 'yuv420p' if self.width % 2 == 0 and self.height % 2 == 0 else 'yuv444p'
        self.frames = 0
        try:
            self._container: Any = av.open(str(self.path), 'w')
            rate = Fraction(self.fps).limit_denominator(1001)
            options = {'g': str(self.gop)}
            if self.codec != 'mpeg4':  # MPEG-4 part 2 has no crf: a generous bit rate instead
                options['crf'] = str(self.crf)
            if self.codec == 'libx265':
                options['x265-params'] = 'log-level=error'
            with keep_scheduling():
                self._stream: Any = cast(Any, self._container.add_stream(
                    self.codec, rate=rate, options=options))
            if self.codec == 'mpeg4':
                self._stream.bit_rate = 8_000_000
        except (av.error.FFmpegError, ValueError) as err:
            msg = f'{self.path}: cannot open a {self.codec} video encoder: {err}'
            raise LeRobotError(msg) from err
        self._stream.width = self.width
        self._stream.height = self.height
        self._stream.pix_fmt = self.pix_fmt
        self._stream.time_base = Fraction(1, 1) / rate
        self._av = av

    def add(self, rgb: npt.NDArray[np.uint8]) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        frame = frame.reformat(format=self.pix_fmt)
        frame.pts = self.frames
        self.frames += 1
        with keep_scheduling():  # the codec opens on the first frame
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        with keep_scheduling():
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()

    @property
    def codec_name(self) -> str:
        """The codec as LeRobot's ``video.codec`` spells it (``h264``, ``av1``, ...)."""
        name = str(self._stream.codec_context.codec.name)
        return _CODEC_NAMES.get(name, name)


#: FFmpeg encoder -> the codec name LeRobot's info.json uses
_CODEC_NAMES = {'libx264': 'h264', 'libx265': 'hevc', 'libsvtav1': 'av1', 'libaom-av1': 'av1',
                'librav1e': 'av1', 'libvpx-vp9': 'vp9'}
