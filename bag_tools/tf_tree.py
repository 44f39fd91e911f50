"""A TF tree from ``/tf`` and ``/tf_static``: the pose of one frame in another over time.

Each edge (parent -> child) keeps its samples (time ns, translation xyz, rotation xyzw); a
static edge holds its latest value forever. ``lookup(parent, child, times)`` walks the tree
(edges may be traversed backwards: inverted), interpolates every dynamic edge at ``times``
(translation linearly, rotation on the shorter arc, renormalized) and composes them. A time
outside a dynamic edge's samples is not valid.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bag_tools.errors import IngestError

__all__ = ['TfTree', 'quat_mul', 'quat_rotate']

F64 = npt.NDArray[np.float64]


def quat_mul(a: F64, b: F64) -> F64:
    """Hamilton product of [..., x, y, z, w] quaternions."""
    ax, ay, az, aw = np.moveaxis(a, -1, 0)
    bx, by, bz, bw = np.moveaxis(b, -1, 0)
    return np.stack([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz], axis=-1)


def quat_rotate(q: F64, v: F64) -> F64:
    """Rotate vectors ``v`` [..., 3] by unit quaternions ``q`` [..., 4]."""
    u, w = q[..., :3], q[..., 3:4]
    t = 2.0 * np.cross(u, v)
    out: F64 = v + w * t + np.cross(u, t)
    return out


def _invert(pose: F64) -> F64:
    q = pose[..., 3:] * np.array([-1.0, -1.0, -1.0, 1.0])
    return np.concatenate([-quat_rotate(q, pose[..., :3]), q], axis=-1)


def _compose(a: F64, b: F64) -> F64:
    """a * b: ``b`` expressed in ``a``'s parent frame."""
    return np.concatenate([a[..., :3] + quat_rotate(a[..., 3:], b[..., :3]),
                           quat_mul(a[..., 3:], b[..., 3:])], axis=-1)


@dataclass
class _Edge:
    static: bool
    times: list[int] = field(default_factory=list)
    values: list[list[float]] = field(default_factory=list)
    logs: list[int] = field(default_factory=list)  # log time of each sample's message


class TfTree:
    """Transforms collected from TFMessages; ``add`` them, then ``lookup``."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str], _Edge] = {}

    def add(self, parent: str, child: str, time_ns: int, pose: list[float], *,
            static: bool, log_ns: int | None = None) -> None:
        """A transform at ``time_ns`` (its stamp), recorded at ``log_ns`` (default: the same)."""
        key = (parent.lstrip('/'), child.lstrip('/'))
        edge = self.edges.setdefault(key, _Edge(static))
        edge.static = edge.static and static
        edge.times.append(int(time_ns))
        edge.values.append(pose)
        edge.logs.append(int(time_ns if log_ns is None else log_ns))

    def path(self, parent: str, child: str) -> list[tuple[tuple[str, str], bool]]:
        """Edges from ``parent`` to ``child`` (key, forward) by breadth-first search."""
        parent, child = parent.lstrip('/'), child.lstrip('/')
        links: dict[str, list[tuple[str, tuple[str, str], bool]]] = {}
        for a, b in self.edges:
            links.setdefault(a, []).append((b, (a, b), True))
            links.setdefault(b, []).append((a, (a, b), False))
        prev: dict[str, tuple[str, tuple[str, str], bool]] = {}
        todo, seen = deque([parent]), {parent}
        while todo:
            frame = todo.popleft()
            if frame == child:
                out = []
                while frame != parent:
                    before, key, forward = prev[frame]
                    out.append((key, forward))
                    frame = before
                return out[::-1]
            for nxt, key, forward in links.get(frame, []):
                if nxt not in seen:
                    seen.add(nxt)
                    prev[nxt] = (frame, key, forward)
                    todo.append(nxt)
        frames = sorted({f for e in self.edges for f in e})
        msg = (f'no TF path from {parent!r} to {child!r} (frames: '
               f'{", ".join(frames[:12]) or "none"}{" ..." if len(frames) > 12 else ""})')
        raise IngestError(msg)

    def sample_times(self, parent: str, child: str) -> npt.NDArray[np.int64]:
        """Times of the samples of the path's dynamic edges (the lookup's natural grid)."""
        times = [t for key, _ in self.path(parent, child) if not self.edges[key].static
                 for t in self.edges[key].times]
        return np.unique(np.asarray(times, np.int64))

    def sample_logs(self, parent: str, child: str,
                    times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The log time of the message of each of ``sample_times`` (the earliest, when two
        messages carry one stamp): a TF stream's clock is decided like any topic's."""
        first: dict[int, int] = {}
        for key, _ in self.path(parent, child):
            edge = self.edges[key]
            if not edge.static:
                for t, log_ns in zip(edge.times, edge.logs):
                    first[t] = min(first.get(t, log_ns), log_ns)
        return np.asarray([first[int(t)] for t in times], np.int64)

    def lookup(
        self, parent: str, child: str, times: npt.NDArray[np.int64]
    ) -> tuple[F64, npt.NDArray[np.bool_]]:
        """Pose [N, 7] (xyz, quaternion xyzw) of ``child`` in ``parent`` and validity."""
        from bag_tools.sync import interp_weights, interpolate

        n = len(times)
        pose = np.tile(np.array([0.0, 0, 0, 0, 0, 0, 1.0]), (n, 1))
        valid = np.ones(n, bool)
        for key, forward in self.path(parent, child):
            edge = self.edges[key]
            order = np.argsort(np.asarray(edge.times, np.int64), kind='stable')
            t = np.asarray(edge.times, np.int64)[order]
            v = np.asarray(edge.values, np.float64)[order]
            if edge.static:
                step = np.tile(v[-1], (n, 1))
            else:
                step, ok = interpolate(times, t, v)
                lo, hi, w = interp_weights(times, t)
                q = v[:, 3:]
                sign = np.where(np.sum(q[lo] * q[hi], axis=1) < 0, -1.0, 1.0)[:, None]
                qi = q[lo] * (1.0 - w[:, None]) + q[hi] * sign * w[:, None]
                step[:, 3:] = qi / np.linalg.norm(qi, axis=1, keepdims=True)
                valid &= ok
            pose = _compose(pose, step if forward else _invert(step))
        pose[:, 3:] /= np.linalg.norm(pose[:, 3:], axis=1, keepdims=True)
        return pose, valid
