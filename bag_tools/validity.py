"""Nothing lands silently invalid: the share of invalid grid steps of every stream of a bag.

After a bag's episodes are aligned, each stream (state, action, camera, extra) is counted over
all of them: a stream invalid at more than ``WARN_INVALID_SHARE`` of the grid steps is a warning
naming the stream, its clock and its time span against the grid; with ``max_invalid`` a stream
over that share fails the bag (``InvalidStreamError``, one line) before anything is written.

Why 10 %: a healthy recording loses a few steps at most (a stream that stops a moment before
the state topic, a camera that drops a frame a second is 3 % at 30 Hz); a clock mismatch, a
video far shorter than its bag or a TF tree stamped on another clock is invalid at 50-100 %.
One step in ten is far above the first and far below the second.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from bag_tools.dataset import EpisodeData
from bag_tools.errors import InvalidStreamError

__all__ = ['WARN_INVALID_SHARE', 'StreamValidity', 'check_invalid', 'stream_validity']

log = logging.getLogger(__name__)

#: A stream invalid at more than this share of a bag's grid steps is warned about.
WARN_INVALID_SHARE = 0.1


class StreamValidity(NamedTuple):
    """One stream of one bag over all its episodes' grid steps."""

    role: str  # state, action:<group>, camera:<role>, extra:<name>
    topic: str
    clock: str
    invalid: int
    steps: int
    span_ns: tuple[int, int] | None  # first and last sample time of the stream (None: empty)
    grid_ns: tuple[int, int]  # first and last grid time of the bag's episodes

    @property
    def share(self) -> float:
        return self.invalid / self.steps if self.steps else 0.0

    def describe(self) -> str:
        """``stream camera:left (topic /x, clock log) invalid at 82% of 950 grid steps: ...``"""
        t0 = self.grid_ns[0]
        grid = f'{0.0:.2f}..{(self.grid_ns[1] - t0) / 1e9:.2f} s'
        if self.span_ns is None:
            span = 'it has no samples'
        else:
            span = (f'its samples span {(self.span_ns[0] - t0) / 1e9:.2f}..'
                    f'{(self.span_ns[1] - t0) / 1e9:.2f} s')
        return (f'stream {self.role} (topic {self.topic}, clock {self.clock}) invalid at '
                f'{self.share:.0%} of {self.steps} grid steps: {span}, the grid {grid} '
                '(seconds from the grid start)')


def stream_validity(
    episodes: Sequence[EpisodeData], spans: Mapping[str, tuple[int, int]],
) -> list[StreamValidity]:
    """Per stream (role), its invalid steps summed over ``episodes`` (from their sync reports);
    ``spans``: topic -> first and last sample time of its stream."""
    if not episodes:
        return []
    grid = (int(episodes[0].timestamp[0]), int(episodes[-1].timestamp[-1]))
    counts: dict[str, list[int]] = {}
    first: dict[str, dict[str, object]] = {}
    for ep in episodes:
        for rep in ep.sync_report.get('topics', []):
            c = counts.setdefault(rep['role'], [0, 0])
            c[0] += int(rep['invalid'])
            c[1] += len(ep.timestamp)
            first.setdefault(rep['role'], rep)
    out = []
    for role, (invalid, steps) in counts.items():
        rep = first[role]
        topic = str(rep['topic'])
        out.append(StreamValidity(role, topic, str(rep['clock']), invalid, steps,
                                  spans.get(topic), grid))
    return out


def check_invalid(
    path: Path, episodes: Sequence[EpisodeData], spans: Mapping[str, tuple[int, int]], *,
    max_invalid: float | None = None,
) -> list[StreamValidity]:
    """Warn about every stream of the bag at ``path`` invalid at more than
    ``WARN_INVALID_SHARE`` of its steps; raise ``InvalidStreamError`` naming the bag and each
    stream over ``max_invalid``. Returns the streams warned about."""
    if max_invalid is not None and not 0.0 <= max_invalid <= 1.0:
        msg = f'{path}: max_invalid {max_invalid!r} is not a share between 0 and 1'
        raise InvalidStreamError(msg)
    found = stream_validity(episodes, spans)
    over = [v for v in found if max_invalid is not None and v.share > max_invalid]
    if over:
        text = '; '.join(v.describe() for v in over)
        msg = f'{path}: over max_invalid {max_invalid:g}: {text}; nothing written for this bag'
        raise InvalidStreamError(msg)
    warned = [v for v in found if v.share > WARN_INVALID_SHARE]
    for v in warned:
        log.warning('%s: %s', path, v.describe())
    return warned
