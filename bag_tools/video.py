"""Camera video recorded beside a bag (mp4, mkv, ...; any codec FFmpeg decodes: H.264, AV1, ...).

Timing rule (documented in docs/ingest.md), first that applies:

1. ``stamps_topic`` in the profile: the k-th message on that topic (e.g. the camera's
   ``camera_info``) times the k-th frame, on the bag's clock like any topic;
2. a sidecar ``<video file>.stamps`` beside the video: one integer per line, the k-th frame's
   time in ns since the epoch;
3. else the container's presentation timestamps: frame time = bag start (first message's log
   time) + ``offset_s`` + pts - first pts.

``iter_frames`` is the one PyAV decoder of the package: bag videos (``decode_frames``: the frames
at given indices) and LeRobot videos (``bag_tools.lerobot.video``: the frames of a time span)
both read through it. Frames are decoded once, in presentation order, and only those used are
converted and resized (``bag_tools.observation.resize_frame``, the rule live images follow).
A video larger than ``MAX_VIDEO_SIDE`` pixels a side is refused before its first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.errors import ImageDecodeError

__all__ = ['MAX_VIDEO_SIDE', 'SIDECAR_SUFFIX', 'bag_stem', 'decode_frames',
           'find_video', 'frame_pts', 'iter_frames', 'read_sidecar', 'video_name']

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = '.stamps'

#: The largest video side decoded (a frame is held in memory before it is resized).
MAX_VIDEO_SIDE = 8192


def _av() -> Any:
    try:
        import av
    except ImportError as err:  # pragma: no cover - av is a dependency
        msg = 'reading video cameras needs PyAV (pip install av)'
        raise ImageDecodeError(msg) from err
    return av


def bag_stem(bag: Path) -> str:
    """A bag's name without its suffix (``100.mcap`` -> ``100``; a rosbag2 folder: its name)."""
    return bag.name if bag.is_dir() else bag.stem


def video_name(template: str, bag: Path) -> str:
    """A camera's ``file:`` for one bag: ``{bag_stem}`` replaced by the bag's stem, so
    ``{bag_stem}/left.mp4`` is ``100/left.mp4`` for ``100.mcap`` (checked by the profile)."""
    return template.format(bag_stem=bag_stem(bag))


def find_video(bag: Path, name: str) -> Path | None:
    """``name`` (a template, ``video_name``) inside a rosbag2 folder, beside the bag
    file/folder, or None."""
    name = video_name(name, bag)
    candidates = [bag / name] if bag.is_dir() else []
    candidates.append(bag.parent / name)
    return next((c for c in candidates if c.is_file()), None)


def _video_stream(container: Any, path: Path) -> Any:
    """The first video stream of an open container; one line naming ``path`` when there is
    none, when the file is a still image (FFmpeg's image demuxers read a JPEG renamed ``.mp4``
    as a one-frame video), or when its frames are larger than ``MAX_VIDEO_SIDE`` a side."""
    fmt = str(container.format.name)
    if fmt.endswith('_pipe') or fmt.startswith('image2'):
        msg = (f'{path}: not a video: FFmpeg reads it as a still image '
               f'({container.format.long_name}); expected a video file such as H.264 in mp4')
        raise ImageDecodeError(msg)
    if not container.streams.video:
        msg = f'{path}: has no video stream'
        raise ImageDecodeError(msg)
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if max(width, height) > MAX_VIDEO_SIDE:
        msg = (f'{path}: video is {width}x{height}; ptr decodes videos of at most '
               f'{MAX_VIDEO_SIDE} pixels a side')
        raise ImageDecodeError(msg)
    return stream


def frame_pts(path: Path) -> npt.NDArray[np.float64]:
    """Presentation times (s, from the stream's first frame) of every frame, in order."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            base = float(stream.time_base) if stream.time_base else 0.0
            pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size]
    except av.error.FFmpegError as err:
        msg = f'{path}: cannot read video: {" ".join(str(err).split())}'
        raise ImageDecodeError(msg) from err
    if not pts:
        msg = f'{path}: the video has no frames'
        raise ImageDecodeError(msg)
    out: npt.NDArray[np.float64] = np.sort(np.asarray(pts, np.float64)) * base
    first = float(out[0])
    shifted: npt.NDArray[np.float64] = out - first
    return shifted


def read_sidecar(path: Path) -> npt.NDArray[np.int64]:
    """The per-frame stamps (ns) of a ``.stamps`` sidecar."""
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines()]
        return np.asarray([int(ln) for ln in lines if ln and not ln.startswith('#')], np.int64)
    except (OSError, ValueError) as err:
        msg = f'{path}: expected one integer stamp (ns) per line: {err}'
        raise ImageDecodeError(msg) from err


def iter_frames(
    path: Path, *, span: tuple[float, float] | None = None, depth: bool = False,
) -> Iterator[tuple[int, float | None, npt.NDArray[Any]]]:
    """Decode ``path``'s first video stream once: ``(k, t, frame)`` per frame in decode order,
    ``k`` counted from the first frame decoded, ``t`` its time in seconds from the stream's
    start (None without a pts), ``frame`` ``uint8 [H, W, 3]`` RGB or, with ``depth``,
    ``uint16 [H, W]``. With ``span = (lo, hi)`` only frames with a time in ``[lo, hi]`` are
    yielded, after a seek to the keyframe before ``lo - 1 s`` when ``lo > 1 s``; the decode stops
    after ``hi``. Raises ``ImageDecodeError`` naming the file."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            stream = _video_stream(container, path)
            stream.thread_type = 'AUTO'
            base = stream.time_base or Fraction(1, 1)
            if span is not None and span[0] > 1.0:  # later episodes of a file: seek near them
                container.seek(int(max(span[0] - 1.0, 0.0) / base), stream=stream, backward=True)
            start = float(stream.start_time * base) if stream.start_time is not None else 0.0
            fmt = 'gray16le' if depth else 'rgb24'
            for k, frame in enumerate(container.decode(stream)):
                t = None if frame.pts is None else float(frame.pts * base) - start
                if span is not None:
                    if t is None or t < span[0]:
                        continue
                    if t > span[1]:
                        break
                yield k, t, frame.to_ndarray(format=fmt)
    except (av.error.FFmpegError, OSError) as err:
        msg = f'{path}: cannot decode video: {" ".join(str(err).split())}'
        raise ImageDecodeError(msg) from err


def decode_frames(
    path: Path, needed: Collection[int], size: tuple[int, int]
) -> dict[int, npt.NDArray[np.uint8]]:
    """Decode the video once; the frames at presentation indices ``needed``, resized to
    ``size`` (H, W) as ``uint8 [H, W, 3]`` RGB."""
    from bag_tools.observation import resize_frame

    want = set(needed)
    out: dict[int, npt.NDArray[np.uint8]] = {}
    if not want:
        return out
    last = max(want)
    for k, _, frame in iter_frames(path):
        if k in want:
            out[k] = resize_frame(frame, size, depth=False)
        if k >= last:
            break
    missing = sorted(want - set(out))
    if missing:
        msg = f'{path}: video ended before frame {missing[0]} ({len(out)} decoded)'
        raise ImageDecodeError(msg)
    return out
