"""One bag + a robot profile → episodes on the control-rate grid (in memory).

The bag's topics are read into streams by ``bag_tools.streams``; here they are cut into
segments, aligned to the grid (states interpolated, commands and frames held) and assembled into
episodes with their sync reports. Compressed and video frames are decoded in a second pass, only
those a grid step uses. An episode longer than ``MAX_EPISODE_STEPS`` grid steps
(duration x rate) is refused before its grid is allocated: a profile at 1 GHz once filled 21 GB
and woke the kernel's OOM killer.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import ImageDecodeError, IngestError
from bag_tools.extras import extra_type
from bag_tools.observation import decode_image, image_channels
from bag_tools.profile import ActionSource, CameraSpec, RobotProfile
from bag_tools.reader import BagReader, bag_content_hash, open_bag
from bag_tools.streams import IMAGE_TYPES, BagStreams, Trajectory, read_streams
from bag_tools.sync import (
    Stream,
    choose_clocks,
    hold,
    interp_weights,
    interpolate,
    make_grid,
    report_held,
    report_interpolated,
    split_segments,
)
from bag_tools.validity import check_invalid
from bag_tools.video import decode_frames

__all__ = ['IMAGE_TYPES', 'MAX_EPISODE_STEPS', 'BagStreams', 'bag_to_episodes', 'episode_id',
           'read_streams']

log = logging.getLogger(__name__)

#: A state or action source slower than this share of the grid rate is warned about.
OUTRUN_SHARE = 0.9
#: The most grid steps one episode may have (about 28 hours at 100 Hz, 2.8 hours at 1 kHz);
#: checked from the segment's duration before any per-step array is allocated.
MAX_EPISODE_STEPS = 10_000_000


def episode_id(path: Path, content_hash: str, robot: str, index: int) -> str:
    stem = path.name if path.is_dir() else path.stem
    stem = re.sub(r'[^A-Za-z0-9_.-]+', '_', stem).strip('._') or 'bag'
    return f'{stem}-{content_hash[:10]}-{robot}-{index:03d}'


def _interp_quaternion(
    grid: npt.NDArray[np.int64], times: npt.NDArray[np.int64], q: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Normalized linear interpolation on the shorter arc (q and -q are the same rotation)."""
    lo, hi, w = interp_weights(grid, times)
    sign = np.where(np.sum(q[lo] * q[hi], axis=1) < 0, -1.0, 1.0)[:, None]
    out = q[lo] * (1.0 - w[:, None]) + q[hi] * sign * w[:, None]
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norm > 0, out / np.where(norm > 0, norm, 1.0), out)
    exact = times[lo] == grid
    out[exact] = q[lo[exact]]
    return out


def _late_start(streams: BagStreams, end_ns: int) -> str:
    """Why no episode fits when a stream starts only after the state ends (a video or a
    topic on another clock): ``; <topic> (clock ...) starts 12.3 s after the state ends``."""
    late = [s for s in streams.all() if len(s.times) and int(s.times[0]) > end_ns]
    if not late:
        return ''
    s = max(late, key=lambda x: int(x.times[0]))
    return (f'; {s.topic} (clock {s.clock}) starts {(int(s.times[0]) - end_ns) / 1e9:.1f} s '
            'after the state ends')


def _grid_steps(profile: RobotProfile, start_ns: int, end_ns: int) -> int:
    """How many grid steps ``make_grid`` would make over [start, end] (nothing allocated)."""
    period = profile.period_ns
    if end_ns < start_ns:
        return 0
    return (end_ns - start_ns) // period + 1 if period > 0 else end_ns - start_ns + 1


def _checked_grid(profile: RobotProfile, source: Path, start_ns: int,
                  end_ns: int) -> npt.NDArray[np.int64]:
    """The grid over [start, end]; over ``MAX_EPISODE_STEPS`` steps is refused first, naming the
    bag ``source``, the rate and the state topic."""
    steps = _grid_steps(profile, start_ns, end_ns)
    if steps > MAX_EPISODE_STEPS or profile.period_ns <= 0:
        span = (end_ns - start_ns) / 1e9
        msg = (f'{source}: rate_hz {profile.rate_hz:g} over {span:.1f} s of '
               f'{profile.state_topic} is {steps} grid steps, more than the '
               f'{MAX_EPISODE_STEPS} an episode may have; lower rate_hz or split the '
               'recording (episodes.max_gap_s, episodes.marker_topic)')
        raise IngestError(msg)
    return make_grid(start_ns, end_ns, profile.period_ns)


class _Aligner:
    """Builds the episodes of one bag from its streams."""

    def __init__(
        self, bag: BagReader, streams: BagStreams, profile: RobotProfile, content_hash: str
    ) -> None:
        self.bag = bag
        self.s = streams
        self.p = profile
        self.hash = content_hash
        self.state_values = [
            np.asarray(s.values, np.float64).reshape(len(s), len(g.joints))
            for g, s in zip(profile.groups, streams.states)
        ]
        self._decoded: dict[tuple[str, int], npt.NDArray[Any]] = {}
        self._warned: set[str] = set()

    def start_ns(self) -> int:
        """Every stream has started: each joint, commands, each camera, each extra topic."""
        needed = [*self.s.cameras.values(), *self.s.extra, *self.s.extra_actions]
        needed += [a for a in self.s.actions if a is not None]
        firsts = []
        for s, values in zip(self.s.states, self.state_values):
            named = ~np.isnan(values)
            firsts += [int(s.times[np.argmax(named[:, j])]) for j in range(named.shape[1])]
        return max([*firsts, *(int(s.times[0]) for s in needed)])

    def end_ns(self) -> int:
        """The last joint state of the group that stopped first (base-only: extra state)."""
        return min(int(s.times[-1]) for s in self.s.state_streams)

    def joint_states(
        self, grid: npt.NDArray[np.int64], group: int
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each joint of a group interpolated from the messages that name it."""
        times, values = self.s.states[group].times, self.state_values[group]
        named = ~np.isnan(values)
        if named.all():
            return interpolate(grid, times, values)
        out = np.zeros((len(grid), values.shape[1]), np.float64)
        valid = np.ones(len(grid), bool)
        for j in range(values.shape[1]):
            rows = named[:, j]
            got, ok = interpolate(grid, times[rows], values[rows, j:j + 1])
            out[:, j] = got[:, 0]
            valid &= ok
        return out, valid

    def episodes(self) -> list[EpisodeData]:
        markers = self.s.markers.times if self.s.markers is not None else np.zeros(0, np.int64)
        segments = split_segments(
            self.s.state.times, max_gap_ns=round(self.p.episodes.max_gap_s * 1e9),
            markers=markers,
        )
        start, end = self.start_ns(), self.end_ns()
        grids = []
        for a, b in segments:
            grid = _checked_grid(self.p, self.s.path, max(a, start), min(b, end))
            if len(grid) >= self.p.min_episode_steps:
                grids.append(grid)
            else:
                log.info('%s: dropping a %d-step segment (shorter than min_episode_steps %d)',
                         self.s.path, len(grid), self.p.min_episode_steps)
        if not grids:
            longest = max((_grid_steps(self.p, max(a, start), min(b, end)) for a, b in segments),
                          default=0)
            msg = (f'{self.s.path}: topic {self.p.state_topic}: too short: '
                   f'{longest} grid steps at {self.p.rate_hz:g} Hz < min_episode_steps '
                   f'{self.p.min_episode_steps}{_late_start(self.s, end)}')
            raise IngestError(msg)
        tol = round(self.p.image_tolerance_s * 1e9)
        holds = [
            {c.role: hold(grid, self.s.cameras[c.role].times, tol) for c in self.p.cameras}
            for grid in grids
        ]
        self.fetch_frames(holds)
        return [self.episode(grid, k, len(grids), holds[k]) for k, grid in enumerate(grids)]

    def fetch_frames(
        self, holds: list[dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]]]
    ) -> None:
        """Second pass: decode the compressed (or video) frames some grid step uses, each once."""
        needed: dict[str, set[int]] = {}
        for per_role in holds:
            for role, (idx, valid) in per_role.items():
                values = self.s.cameras[role].values
                for i in np.unique(idx[valid]):
                    if isinstance(values[i], int):
                        needed.setdefault(role, set()).add(values[i])
        for cam in self.p.cameras:
            if cam.is_video and needed.get(cam.role):
                path = self.s.videos[cam.role]['path']
                frames = decode_frames(path, needed.pop(cam.role), self.p.image_size)
                self._decoded.update({(cam.role, k): f for k, f in frames.items()})
        roles_of: dict[str, list[CameraSpec]] = {}
        for cam in self.p.cameras:
            if needed.get(cam.role):
                roles_of.setdefault(self.s.cameras[cam.role].topic, []).append(cam)
        if not roles_of:
            return
        left = sum(len(v) for v in needed.values())
        counts = dict.fromkeys(roles_of, 0)
        for raw in self.bag.raw_messages(sorted(roles_of)):
            arrival = counts[raw.topic]
            counts[raw.topic] += 1
            cams = [c for c in roles_of[raw.topic] if arrival in needed[c.role]]
            if not cams:
                continue
            msg = self.bag.deserialize(raw)
            for cam in cams:
                try:
                    frame = decode_image(msg, size=self.p.image_size, depth=cam.depth)
                except ImageDecodeError as err:
                    text = (f'{self.s.path}: topic {raw.topic}: {err} (message at '
                            f'{raw.log_time_ns} ns)')
                    raise ImageDecodeError(text) from err
                self._decoded[(cam.role, arrival)] = frame
                left -= 1
            if left == 0:
                break

    def outrun(self, report: dict[str, Any]) -> None:
        """Warn (once per topic and bag) when the grid is faster than a state/action source."""
        rate = float(report['rate_hz'])
        if rate <= 0 or rate >= OUTRUN_SHARE * self.p.rate_hz or report['topic'] in self._warned:
            return
        self._warned.add(report['topic'])
        log.warning('%s: topic %s (%s) runs at %.1f Hz, slower than the %g Hz grid: steps '
                    'between its messages are %s', self.s.path, report['topic'], report['role'],
                    rate, self.p.rate_hz,
                    'held' if report['role'].startswith('action') else 'interpolated')

    def episode(
        self,
        grid: npt.NDArray[np.int64],
        index: int,
        count: int,
        holds: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]],
    ) -> EpisodeData:
        reports: list[Any] = []
        parts, state_valid = self.states(grid, reports)
        state = np.concatenate(parts, axis=1)
        action, action_valid = self.actions(grid, parts, state_valid, reports)
        for rep in reports:
            if rep['role'].startswith(('state', 'action')):
                self.outrun(rep)
        images, image_valid = {}, {}
        for cam in self.p.cameras:
            images[cam.role], image_valid[cam.role] = self.frames(
                cam, grid, holds[cam.role], reports)
        tags: dict[str, Any] = dict(self.s.custom_data)
        return EpisodeData(
            id=episode_id(self.s.path, self.hash, self.p.robot, index),
            robot=self.p.robot,
            timestamp=grid,
            state=state.astype(np.float32),
            action=action.astype(np.float32),
            state_valid=state_valid,
            action_valid=action_valid,
            images=images,
            image_valid=image_valid,
            task=self.task(grid, tags),
            source=str(self.s.path),
            content_hash=self.hash,
            tags=tags,
            sync_report=self.sync_report(grid, index, count, reports),
            part=(index, count),
        )

    def states(
        self, grid: npt.NDArray[np.int64], reports: list[Any],
    ) -> tuple[list[npt.NDArray[np.float64]], npt.NDArray[np.bool_]]:
        """The state parts on the grid (each group's joints, then each extra state) and where
        all of them are valid; appends one report per source."""
        parts = []
        state_valid = np.ones(len(grid), bool)
        for k, g in enumerate(self.p.groups):
            joints, ok = self.joint_states(grid, k)
            role = f'state:{g.name}' if g.name else 'state'
            reports.append(report_interpolated(self.s.states[k], role, grid, ok))
            parts.append(joints)
            state_valid &= ok
        for spec, s in zip(self.p.extra_state, self.s.extra):
            values = np.asarray(s.values, np.float64)
            got, ok = interpolate(grid, s.times, values)
            kind = extra_type(s.msgtype)
            for q in kind.quaternions if kind is not None else ():
                got[:, q:q + 4] = _interp_quaternion(grid, s.times, values[:, q:q + 4])
            parts.append(got)
            state_valid = state_valid & ok
            reports.append(report_interpolated(s, f'extra:{spec.name}', grid, ok))
        return parts, state_valid

    def sync_report(
        self, grid: npt.NDArray[np.int64], index: int, count: int, reports: list[Any],
    ) -> dict[str, Any]:
        """The episode's sync report: its grid, clocks, place in the bag and per-topic reports."""
        report: dict[str, Any] = {
            'grid': {'start_ns': int(grid[0]), 'period_ns': self.p.period_ns,
                     'steps': len(grid)},
            'clock': sorted({r['clock'] for r in reports}),
            'episode_in_bag': [index, count],
            'ignored_state_messages': self.s.ignored_state_messages,
            'topics': reports,
        }
        if self.s.videos:
            report['videos'] = {role: {k: v for k, v in info.items() if k != 'path'}
                                for role, info in self.s.videos.items()}
        return report

    def actions(
        self,
        grid: npt.NDArray[np.int64],
        joint_parts: list[npt.NDArray[np.float64]],
        state_valid: npt.NDArray[np.bool_],
        reports: list[Any],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each group's action (its command, or its own next state), then ``extra_action``."""
        parts = []
        valid = np.ones(len(grid), bool)
        for k, g in enumerate(self.p.groups):
            if g.action.source is ActionSource.NEXT_STATE:
                joints = joint_parts[k]
                action = np.empty_like(joints)
                action[:-1] = joints[1:]
                action[-1] = joints[-1]
                ok = np.zeros(len(grid), bool)
                ok[:-1] = state_valid[1:] & state_valid[:-1]
            else:
                s = self.s.actions[k]
                assert s is not None
                role = f'action:{g.name}' if g.name else 'action'
                action, ok = self.held(grid, s, len(g.action.names), role, reports)
            parts.append(action)
            valid &= ok
        for spec, s in zip(self.p.extra_action, self.s.extra_actions):
            action, ok = self.held(grid, s, len(spec.dim_names), f'action:{spec.name}', reports)
            parts.append(action)
            valid &= ok
        return np.concatenate(parts, axis=1), valid

    def held(
        self, grid: npt.NDArray[np.int64], s: Stream, width: int, role: str,
        reports: list[Any],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The latest command at or before each grid time; of a multi-point trajectory, the
        point whose time (message time + time_from_start) is nearest the grid time."""
        idx, valid = hold(grid, s.times, None)
        if any(isinstance(v, Trajectory) for v in s.values):
            action = np.zeros((len(grid), width), np.float64)
            for t in np.flatnonzero(valid):
                v = s.values[int(idx[t])]
                if isinstance(v, Trajectory):
                    at = s.times[int(idx[t])] + v.offsets
                    action[t] = v.positions[int(np.argmin(np.abs(at - grid[t])))]
                else:
                    action[t] = v
        else:
            values = np.asarray(s.values, np.float64).reshape(len(s), width)
            action = np.where(valid[:, None], values[np.clip(idx, 0, None)], 0.0)
        reports.append(report_held(s, role, grid, idx, valid))
        return action, valid

    def frames(
        self,
        cam: CameraSpec,
        grid: npt.NDArray[np.int64],
        held: tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]],
        reports: list[Any],
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
        s = self.s.cameras[cam.role]
        idx, valid = held
        h, w = self.p.image_size
        shape = (len(grid), h, w, image_channels(cam.depth))
        out = np.zeros(shape, np.uint16 if cam.depth else np.uint8)
        for t in np.flatnonzero(valid):
            value = s.values[int(idx[t])]
            out[t] = self._decoded[(cam.role, value)] if isinstance(value, int) else value
        reports.append(report_held(s, f'camera:{cam.role}', grid, idx, valid))
        return out, valid

    def task(self, grid: npt.NDArray[np.int64], tags: dict[str, Any]) -> str:
        t = self.s.task
        if t is not None and len(t):
            i = int(np.searchsorted(t.times, grid[-1], side='right')) - 1
            return str(t.values[max(i, 0)])
        return str(tags.get('ptr.task') or self.p.task)


def bag_to_episodes(
    path: str | Path, profile: RobotProfile, *, content_hash: str | None = None,
    salvage: bool = False, scratch: Path | None = None, max_invalid: float | None = None,
) -> list[EpisodeData]:
    """Read one bag and return its episodes (raises a ``BagToolsError`` on bad input).

    ``salvage``: a truncated bag is read up to the damage (its episodes' sync reports say what
    was lost) instead of refused; its readable part is rewritten into a temp folder inside
    ``scratch`` (default: the system's temp folder), removed when the bag is closed.
    ``max_invalid``: a stream invalid at more than this share of the bag's grid steps raises
    ``InvalidStreamError`` naming bag and stream (``bag_tools.validity``; without it, streams
    over ``WARN_INVALID_SHARE`` are only warned about)."""
    path = Path(path)
    with open_bag(path, salvage=salvage, scratch=scratch) as bag:
        streams = read_streams(bag, profile)
        choose_clocks(streams.all())
        digest = content_hash if content_hash is not None else bag_content_hash(path)
        episodes = _Aligner(bag, streams, profile, digest).episodes()
        spans = {s.topic: (int(s.times[0]), int(s.times[-1])) for s in streams.all()
                 if len(s.times)}
        check_invalid(path, episodes, spans, max_invalid=max_invalid)
        if bag.salvaged:
            for ep in episodes:
                ep.sync_report['salvaged'] = bag.salvaged
        return episodes
