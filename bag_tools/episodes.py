"""One bag + a robot profile → episodes on the control-rate grid (in memory).

Reading: every profile topic is read in log-time order; joint states, commands and extra
observations are decoded to vectors on the way and raw ``Image`` frames are decoded and resized
at once. Of a ``CompressedImage`` only the stamps are kept; once the grid is known, a second pass
over the camera topics decodes just the frames a grid step uses, so memory stays bounded by the
output, not by the bag. Every bad input stops the bag with one line naming bag, topic and problem.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import BagToolsError, ImageDecodeError, IngestError
from bag_tools.observation import (
    command_values,
    decode_image,
    extra_state_values,
    joint_positions,
    stamp_ns,
)
from bag_tools.profile import (
    COMMAND_TYPES,
    ActionSource,
    CameraSpec,
    RobotProfile,
    normalize_msgtype,
)
from bag_tools.reader import BagReader, TopicInfo, bag_content_hash, open_bag
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

__all__ = ['IMAGE_TYPES', 'BagStreams', 'bag_to_episodes', 'episode_id', 'read_streams']

log = logging.getLogger(__name__)

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
JOINT_STATE = 'sensor_msgs/msg/JointState'
POSE_TYPES = ('geometry_msgs/msg/PoseStamped', 'geometry_msgs/msg/Pose')


@dataclass
class BagStreams:
    """The profile's topics of one bag, decoded to vectors (images: payloads or frames)."""

    path: Path
    state: Stream
    action: Stream | None
    cameras: dict[str, Stream]
    extra: list[Stream]
    markers: Stream | None
    task: Stream | None
    custom_data: dict[str, str] = field(default_factory=dict)
    ignored_state_messages: int = 0

    def all(self) -> list[Stream]:
        out = [self.state, *self.cameras.values(), *self.extra]
        out += [s for s in (self.action, self.markers, self.task) if s is not None]
        return out


def _fail(path: Path, topic: str, problem: str) -> IngestError:
    return IngestError(f'{path}: topic {topic}: {problem}')


def _bag_topics(bag: BagReader) -> dict[str, TopicInfo]:
    """The bag's topics keyed by absolute name: ROS 1 recorders may store ``joint_states``
    for ``/joint_states`` (``TopicInfo.topic`` keeps the bag's spelling for reading)."""
    out: dict[str, TopicInfo] = {}
    for topic, info in bag.topics().items():
        out.setdefault('/' + topic.lstrip('/'), info)
    return out


def _check_topics(bag: BagReader, profile: RobotProfile) -> dict[str, TopicInfo]:
    infos = _bag_topics(bag)
    wanted: list[tuple[str, str, tuple[str, ...]]] = [
        (profile.state_topic, 'state_topic', (JOINT_STATE,)),
    ]
    if profile.action.topic:
        wanted.append((profile.action.topic, 'action.topic', COMMAND_TYPES))
    wanted += [(c.topic, f'cameras.{c.role}.topic', IMAGE_TYPES) for c in profile.cameras]
    wanted += [
        (e.topic, f'extra_state[{i}].topic', (e.type,)) for i, e in enumerate(profile.extra_state)
    ]
    for topic, key, _ in wanted:
        info = infos.get(topic)
        if info is None or info.msgcount == 0:
            names = sorted(i.topic for i in infos.values())
            have = ', '.join(names[:8]) + (f' and {len(names) - 8} more' if len(names) > 8
                                           else '') if names else 'no topics'
            problem = 'not in the bag' if info is None else 'has no messages'
            raise _fail(bag.path, topic, f'{problem} (profile key {key}; the bag has {have})')
    bag.require_defined([infos[t].topic for t, _, _ in wanted])
    for topic, key, types in wanted:
        info = infos[topic]
        if normalize_msgtype(info.msgtype) not in types:
            raise _fail(bag.path, topic, f'type {info.msgtype}, profile key {key} expects '
                        f'{" or ".join(types)}')
    for optional in (profile.task_topic, profile.episodes.marker_topic):
        if optional and optional not in infos:
            log.warning('%s: topic %s (from the profile) is not in the bag', bag.path, optional)
    return infos


def read_streams(bag: BagReader, profile: RobotProfile) -> BagStreams:
    """Read and decode the profile's topics of an open bag."""
    infos = _check_topics(bag, profile)

    def stream(topic: str | None) -> Stream | None:
        if not topic or topic not in infos:
            return None
        return Stream(infos[topic].topic, normalize_msgtype(infos[topic].msgtype))

    state = stream(profile.state_topic)
    assert state is not None  # checked above
    streams = BagStreams(
        path=bag.path,
        state=state,
        action=stream(profile.action.topic),
        cameras={c.role: Stream(infos[c.topic].topic, normalize_msgtype(infos[c.topic].msgtype))
                 for c in profile.cameras},
        extra=[Stream(infos[e.topic].topic, e.type) for e in profile.extra_state],
        markers=stream(profile.episodes.marker_topic),
        task=stream(profile.task_topic),
        custom_data=bag.custom_data(),
    )
    handlers: dict[str, list[tuple[Stream, Callable[[Any], Any]]]] = {}

    def on(s: Stream | None, fn: Callable[[Any], Any]) -> None:
        if s is not None:
            handlers.setdefault(s.topic, []).append((s, fn))

    joints = set(profile.joints)

    def state_value(msg: Any) -> Any:
        names = list(msg.name)
        if not names:
            msg_ = 'JointState without joint names; cannot order its positions by name'
            raise IngestError(msg_)
        if not joints.intersection(names):
            return None  # only other joints (another robot part on the same topic)
        # arm and gripper drivers may publish separate messages on one topic: NaN = not named
        return joint_positions(msg, profile.joints, allow_missing=True)

    on(streams.state, state_value)
    if streams.action is not None:
        mtype = streams.action.msgtype
        on(streams.action, lambda m: command_values(m, mtype, profile.action.names))
    for cam in profile.cameras:
        on(streams.cameras[cam.role], _image_handler(cam, profile.image_size))
    for s, spec in zip(streams.extra, profile.extra_state):
        on(s, functools.partial(_extra_value, msgtype=s.msgtype, joints=spec.joints))
    on(streams.markers, lambda m: True)
    on(streams.task, lambda m: str(getattr(m, 'data', '')))

    for raw in bag.raw_messages(list(handlers)):
        msg = bag.deserialize(raw)
        for s, fn in handlers[raw.topic]:
            try:
                value = fn(msg)
            except BagToolsError as err:
                cls = type(err) if isinstance(err, ImageDecodeError) else IngestError
                text = f'{bag.path}: topic {raw.topic}: {err} (message at {raw.log_time_ns} ns)'
                raise cls(text) from err
            if value is None:  # a JointState naming none of the wanted joints
                if s is streams.state:
                    streams.ignored_state_messages += 1
                continue
            if value is _PENDING:
                value = len(s.values)  # arrival index: found again in the second pass
            s.log_ns.append(raw.log_time_ns)
            s.stamp_ns.append(stamp_ns(msg))
            s.values.append(value)
    positions = np.asarray(streams.state.values, np.float64).reshape(-1, len(profile.joints))
    named = ~np.isnan(positions)
    never = [j for i, j in enumerate(profile.joints) if not named[:, i].any()]
    if never:
        raise _fail(bag.path, profile.state_topic, f'no JointState message names joints {never}')
    for s, spec in zip(streams.extra, profile.extra_state):
        if not len(s):
            raise _fail(bag.path, s.topic, f'no JointState message names joints '
                        f'{list(spec.joints)}')
    return streams


def _extra_value(msg: Any, *, msgtype: str, joints: tuple[str, ...]) -> Any:
    if joints and not set(joints).intersection(msg.name):
        return None
    return extra_state_values(msg, msgtype, joints=joints)


_PENDING = object()


def _image_handler(cam: CameraSpec, size: tuple[int, int]) -> Callable[[Any], Any]:
    def handle(msg: Any) -> Any:
        if hasattr(msg, 'encoding'):  # raw Image: decode now, it is large
            return decode_image(msg, size=size, depth=cam.depth)
        return _PENDING  # CompressedImage: decoded in a second pass if a grid step uses it

    return handle


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


class _Aligner:
    """Builds the episodes of one bag from its streams."""

    def __init__(
        self, bag: BagReader, streams: BagStreams, profile: RobotProfile, content_hash: str
    ) -> None:
        self.bag = bag
        self.s = streams
        self.p = profile
        self.hash = content_hash
        self.state_values = np.asarray(streams.state.values, np.float64).reshape(
            len(streams.state), len(profile.joints))
        self._decoded: dict[tuple[str, int], npt.NDArray[Any]] = {}

    def start_ns(self) -> int:
        """Every stream has started: each joint, commands, each camera, each extra topic."""
        needed = [*self.s.cameras.values(), *self.s.extra]
        if self.p.action.source is ActionSource.COMMAND and self.s.action is not None:
            needed.append(self.s.action)
        named = ~np.isnan(self.state_values)
        first_joint = max(int(self.s.state.times[np.argmax(named[:, j])])
                          for j in range(named.shape[1]))
        return max([first_joint, *(int(s.times[0]) for s in needed)])

    def joint_states(
        self, grid: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Each joint interpolated from the messages that name it."""
        times, values = self.s.state.times, self.state_values
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
        start = self.start_ns()
        grids = []
        for a, b in segments:
            grid = make_grid(max(a, start), b, self.p.period_ns)
            if len(grid) >= self.p.chunk_length:
                grids.append(grid)
            else:
                log.info('%s: dropping a %d-step segment (shorter than chunk_length %d)',
                         self.s.path, len(grid), self.p.chunk_length)
        if not grids:
            longest = max(
                (len(make_grid(max(a, start), b, self.p.period_ns)) for a, b in segments),
                default=0,
            )
            msg = (f'{self.s.path}: topic {self.p.state_topic}: shorter than one action chunk: '
                   f'{longest} grid steps at {self.p.rate_hz:g} Hz < chunk_length '
                   f'{self.p.chunk_length}')
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
        """Second pass: decode the compressed frames some grid step uses, each once."""
        needed: dict[str, set[int]] = {}
        for per_role in holds:
            for role, (idx, valid) in per_role.items():
                values = self.s.cameras[role].values
                for i in np.unique(idx[valid]):
                    if isinstance(values[i], int):
                        needed.setdefault(role, set()).add(values[i])
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

    def episode(
        self,
        grid: npt.NDArray[np.int64],
        index: int,
        count: int,
        holds: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]],
    ) -> EpisodeData:
        reports = []
        joints, state_valid = self.joint_states(grid)
        reports.append(report_interpolated(self.s.state, 'state', grid, state_valid))
        parts = [joints]
        for spec, s in zip(self.p.extra_state, self.s.extra):
            values = np.asarray(s.values, np.float64)
            got, ok = interpolate(grid, s.times, values)
            if s.msgtype in POSE_TYPES:
                got[:, 3:7] = _interp_quaternion(grid, s.times, values[:, 3:7])
            parts.append(got)
            state_valid = state_valid & ok
            reports.append(report_interpolated(s, f'extra:{spec.name}', grid, ok))
        state = np.concatenate(parts, axis=1)
        action, action_valid = self.actions(grid, state, state_valid, reports)
        images, image_valid = {}, {}
        for cam in self.p.cameras:
            images[cam.role], image_valid[cam.role] = self.frames(
                cam, grid, holds[cam.role], reports)
        tags: dict[str, Any] = dict(self.s.custom_data)
        report: dict[str, Any] = {
            'grid': {'start_ns': int(grid[0]), 'period_ns': self.p.period_ns,
                     'steps': len(grid)},
            'clock': sorted({r['clock'] for r in reports}),
            'episode_in_bag': [index, count],
            'ignored_state_messages': self.s.ignored_state_messages,
            'topics': reports,
        }
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
            sync_report=report,
            part=(index, count),
        )

    def actions(
        self,
        grid: npt.NDArray[np.int64],
        state: npt.NDArray[np.float64],
        state_valid: npt.NDArray[np.bool_],
        reports: list[Any],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        if self.p.action.source is ActionSource.NEXT_STATE:
            n = len(self.p.joints)
            action = np.empty((len(grid), n), np.float64)
            action[:-1] = state[1:, :n]
            action[-1] = state[-1, :n]
            valid = np.zeros(len(grid), bool)
            valid[:-1] = state_valid[1:] & state_valid[:-1]
            return action, valid
        s = self.s.action
        assert s is not None
        idx, valid = hold(grid, s.times, None)
        values = np.asarray(s.values, np.float64).reshape(len(s), len(self.p.action.names))
        action = np.where(valid[:, None], values[np.clip(idx, 0, None)], 0.0)
        reports.append(report_held(s, 'action', grid, idx, valid))
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
        shape = (len(grid), h, w, 1 if cam.depth else 3)
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
    path: str | Path, profile: RobotProfile, *, content_hash: str | None = None
) -> list[EpisodeData]:
    """Read one bag and return its episodes (raises a ``BagToolsError`` on bad input)."""
    path = Path(path)
    with open_bag(path) as bag:
        streams = read_streams(bag, profile)
        choose_clocks(streams.all())
        digest = content_hash if content_hash is not None else bag_content_hash(path)
        return _Aligner(bag, streams, profile, digest).episodes()
