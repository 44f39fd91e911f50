"""One bag + a robot profile → episodes on the control-rate grid (in memory).

Reading: every profile topic is read in log-time order; joint states, commands and extra
observations are decoded to vectors on the way and raw ``Image`` frames are decoded and resized
at once. Of a ``CompressedImage`` only the stamps are kept; once the grid is known, a second pass
over the camera topics decodes just the frames a grid step uses, so memory stays bounded by the
output, not by the bag. Every bad input stops the bag with one line naming bag, topic and problem.
An episode longer than ``MAX_EPISODE_STEPS`` grid steps (duration x rate) is refused before its
grid is allocated: a profile at 1 GHz once filled 21 GB and woke the kernel's OOM killer.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import EpisodeData
from bag_tools.errors import BagToolsError, ImageDecodeError, IngestError
from bag_tools.extras import extra_type
from bag_tools.observation import (
    MissingJointsError,
    command_values,
    controller_positions,
    decode_image,
    extra_state_values,
    image_channels,
    joint_positions,
    stamp_ns,
    trajectory_points,
)
from bag_tools.profile import (
    COMMAND_TYPES,
    CONTROLLER_STATE,
    STATE_TYPES,
    ActionSource,
    ArmSpec,
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
from bag_tools.tf_tree import TfTree
from bag_tools.validity import check_invalid
from bag_tools.video import (
    SIDECAR_SUFFIX,
    decode_frames,
    find_video,
    frame_pts,
    read_sidecar,
    video_name,
)

__all__ = ['IMAGE_TYPES', 'MAX_EPISODE_STEPS', 'BagStreams', 'bag_to_episodes', 'episode_id',
           'read_streams']

log = logging.getLogger(__name__)

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
JOINT_STATE = 'sensor_msgs/msg/JointState'
TF_MESSAGE = 'tf2_msgs/msg/TFMessage'
TF_STATIC = '/tf_static'
#: A state or action source slower than this share of the grid rate is warned about.
OUTRUN_SHARE = 0.9
#: The most grid steps one episode may have (about 28 hours at 100 Hz, 2.8 hours at 1 kHz);
#: checked from the segment's duration before any per-step array is allocated.
MAX_EPISODE_STEPS = 10_000_000


@dataclass
class BagStreams:
    """The profile's topics of one bag, decoded to vectors (images: payloads or frames)."""

    path: Path
    states: list[Stream]  # one per arm group
    actions: list[Stream | None]  # per arm group; None for next_state actions
    cameras: dict[str, Stream]
    extra: list[Stream]
    markers: Stream | None
    task: Stream | None
    extra_actions: list[Stream] = field(default_factory=list)
    custom_data: dict[str, str] = field(default_factory=dict)
    ignored_state_messages: int = 0
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> timing, file

    @property
    def state(self) -> Stream:
        """The stream that times the episode: the first arm group's state topic, or of a
        base-only profile its first extra state (odometry, a pose, TF)."""
        return self.states[0] if self.states else self.extra[0]

    @property
    def state_streams(self) -> list[Stream]:
        """The streams whose end ends the episode (the arm groups', or a base's extras)."""
        return self.states or self.extra

    @property
    def action(self) -> Stream | None:
        return self.actions[0]

    def all(self) -> list[Stream]:
        out = [*self.states, *self.cameras.values(), *self.extra, *self.extra_actions]
        out += [s for s in (*self.actions, self.markers, self.task) if s is not None]
        return out


def _fail(path: Path, topic: str, problem: str) -> IngestError:
    return IngestError(f'{path}: topic {topic}: {problem}')


def _problems(path: Path, problems: list[str], cls: type[BagToolsError] = IngestError
              ) -> BagToolsError:
    """One line for every problem of a bag (all of them, so one run shows them all)."""
    if len(problems) == 1:
        return cls(f'{path}: {problems[0]}')
    return cls(f'{path}: {len(problems)} problems: ' + '; '.join(problems))


def _bag_topics(bag: BagReader) -> dict[str, TopicInfo]:
    """The bag's topics keyed by absolute name: ROS 1 recorders may store ``joint_states``
    for ``/joint_states`` (``TopicInfo.topic`` keeps the bag's spelling for reading)."""
    out: dict[str, TopicInfo] = {}
    for topic, info in bag.topics().items():
        out.setdefault('/' + topic.lstrip('/'), info)
    return out


def _key(group: ArmSpec, key: str) -> str:
    return f'arms.{group.name}.{key}' if group.name else key


def _check_topics(bag: BagReader, profile: RobotProfile) -> dict[str, TopicInfo]:
    """Every problem of the profile against the bag's topics, raised together."""
    infos = _bag_topics(bag)
    wanted: list[tuple[str, str, tuple[str, ...]]] = []
    for g in profile.groups:
        wanted.append((g.state_topic, _key(g, 'state_topic'), STATE_TYPES))
        if g.action.topic:
            wanted.append((g.action.topic, _key(g, 'action.topic'), COMMAND_TYPES))
    problems: list[str] = []
    for c in profile.cameras:
        if not c.is_video:
            assert c.topic is not None
            wanted.append((c.topic, f'cameras.{c.role}.topic', IMAGE_TYPES))
            continue
        if c.stamps_topic:
            wanted.append((c.stamps_topic, f'cameras.{c.role}.stamps_topic', ()))
        if find_video(bag.path, c.file or '') is None:
            where = bag.path if bag.path.is_dir() else bag.path.parent
            name = video_name(c.file or '', bag.path)
            given = '' if name == c.file else f' {c.file!r}'
            problems.append(f'video {name} (profile key cameras.{c.role}.file{given}) is not '
                            f'beside the bag (looked in {where})')
    wanted += [(e.topic, f'extra_state[{i}].topic', (e.type,))
               for i, e in enumerate(profile.extra_state)]
    wanted += [(e.topic, f'extra_action[{i}].topic', (e.type,))
               for i, e in enumerate(profile.extra_action)]
    names = sorted(i.topic for i in infos.values())
    have = ', '.join(names[:8]) + (f' and {len(names) - 8} more' if len(names) > 8
                                   else '') if names else 'no topics'
    seen: set[tuple[str, str]] = set()
    for topic, key, types in wanted:
        info = infos.get(topic)
        if (topic, key) in seen:
            continue
        seen.add((topic, key))
        if info is None or info.msgcount == 0:
            problem = 'not in the bag' if info is None else 'has no messages'
            problems.append(f'topic {topic}: {problem} (profile key {key}; the bag has {have})')
        elif not info.defined:
            problems.append(f'topic {topic}: type {info.msgtype} has no definition in the bag '
                            'and is not a standard ROS 2 type')
        elif types and normalize_msgtype(info.msgtype) not in types:
            problems.append(f'topic {topic}: type {info.msgtype}, profile key {key} expects '
                            f'{" or ".join(types)}')
    if problems:
        raise _problems(bag.path, list(dict.fromkeys(problems)))
    for optional in (profile.task_topic, profile.episodes.marker_topic):
        if optional and optional not in infos:
            log.warning('%s: topic %s (from the profile) is not in the bag', bag.path, optional)
    return infos


Handler = Callable[[Any, int], Any]


def read_streams(bag: BagReader, profile: RobotProfile) -> BagStreams:
    """Read and decode the profile's topics of an open bag."""
    infos = _check_topics(bag, profile)
    streams = _open_streams(bag, profile, infos)
    handlers, tf_topics = _stream_handlers(profile, streams, infos)
    tf = TfTree()
    errors = _dispatch(bag, streams, handlers, tf, tf_topics)
    _raise_read_problems(bag, profile, streams, errors)
    for s, spec in zip(streams.extra, profile.extra_state):
        if spec.parent:
            _tf_stream(s, tf, spec.parent, spec.child, bag)
    for cam in profile.cameras:
        if cam.is_video:
            _video_stream(streams, cam, bag)
    return streams


def _stream(infos: dict[str, TopicInfo], topic: str | None, msgtype: str | None = None,
            ) -> Stream | None:
    """An empty stream of ``topic`` (None when the profile names none or the bag lacks it)."""
    if not topic or topic not in infos:
        return None
    return Stream(infos[topic].topic, msgtype or normalize_msgtype(infos[topic].msgtype))


def _open_streams(
    bag: BagReader, profile: RobotProfile, infos: dict[str, TopicInfo],
) -> BagStreams:
    """Empty streams for every topic the profile reads from this bag."""
    states = [_stream(infos, g.state_topic) for g in profile.groups]
    return BagStreams(
        path=bag.path,
        states=[s for s in states if s is not None],
        actions=[_stream(infos, g.action.topic) for g in profile.groups],
        cameras={c.role: s for c in profile.cameras if not c.is_video
                 and (s := _stream(infos, c.topic)) is not None},
        extra=[Stream(infos[e.topic].topic, e.type) for e in profile.extra_state],
        markers=_stream(infos, profile.episodes.marker_topic),
        task=_stream(infos, profile.task_topic),
        extra_actions=[Stream(infos[e.topic].topic, e.type) for e in profile.extra_action],
        custom_data=bag.custom_data(),
    )


def _stream_handlers(
    profile: RobotProfile, streams: BagStreams, infos: dict[str, TopicInfo],
) -> tuple[dict[str, list[tuple[Stream, Handler]]], set[str]]:
    """Per topic, the streams it fills and how each decodes a message; and the tf topics
    (read into the transform tree, not into a stream). Adds video stamp streams to
    ``streams.cameras``."""
    handlers: dict[str, list[tuple[Stream, Handler]]] = {}

    def on(s: Stream | None, fn: Handler) -> None:
        if s is not None:
            handlers.setdefault(s.topic, []).append((s, fn))

    for g, s in zip(profile.groups, streams.states):
        on(s, _state_handler(g, s))
    for g, a in zip(profile.groups, streams.actions):
        if a is not None:
            on(a, _action_handler(g, a.msgtype))
    for cam in profile.cameras:
        if cam.is_video:
            if cam.stamps_topic:
                stamps = _stream(infos, cam.stamps_topic)
                assert stamps is not None
                streams.cameras[cam.role] = stamps
                on(stamps, lambda m, t: _PENDING)  # value: the arrival index = the frame index
        else:
            on(streams.cameras[cam.role], _image_handler(cam, profile.image_size))
    tf_topics: set[str] = set()
    for s, spec in zip(streams.extra, profile.extra_state):
        if spec.parent:
            tf_topics.add(s.topic)
            continue
        on(s, functools.partial(_extra_value, msgtype=s.msgtype, joints=spec.joints))
    if tf_topics and TF_STATIC in infos:
        tf_topics.add(infos[TF_STATIC].topic)
    for s in streams.extra_actions:
        on(s, functools.partial(_extra_value, msgtype=s.msgtype, joints=()))
    on(streams.markers, lambda m, t: True)
    on(streams.task, lambda m, t: str(getattr(m, 'data', '')))
    return handlers, tf_topics


def _dispatch(
    bag: BagReader, streams: BagStreams, handlers: dict[str, list[tuple[Stream, Handler]]],
    tf: TfTree, tf_topics: set[str],
) -> dict[int, BagToolsError]:
    """One pass over the bag: each message decoded into its streams (and tf messages into
    ``tf``). Returns id(stream) -> its first error; reading goes on past errors."""
    errors: dict[int, BagToolsError] = {}
    for raw in bag.raw_messages(sorted(set(handlers) | tf_topics)):
        msg = bag.deserialize_lean(raw)
        if raw.topic in tf_topics:
            _add_transforms(tf, msg, raw.log_time_ns,
                            static='/' + raw.topic.lstrip('/') == TF_STATIC)
        for s, fn in handlers.get(raw.topic, ()):
            if id(s) in errors:
                continue
            try:
                value = fn(msg, raw.log_time_ns)
            except BagToolsError as err:
                errors[id(s)] = err
                continue
            if value is None:  # a JointState naming none of the wanted joints
                if s in streams.states:
                    streams.ignored_state_messages += 1
                continue
            if value is _PENDING:
                value = len(s.values)  # arrival index: found again in the second pass
            s.log_ns.append(raw.log_time_ns)
            s.stamp_ns.append(stamp_ns(msg))
            s.values.append(value)
    return errors


def _raise_read_problems(
    bag: BagReader, profile: RobotProfile, streams: BagStreams,
    errors: dict[int, BagToolsError],
) -> None:
    """Every problem found while reading, in one line; an action that lacks joints the state
    topic never names either is the ``joints`` entry's fault, not the action topic's."""
    problems: list[str] = []
    image_error = False
    for g, s, a in zip(profile.groups, streams.states, streams.actions):
        never: set[str] = set()
        if id(s) in errors:
            problems.append(f'topic {s.topic}: {errors[id(s)]}')
        else:
            positions = np.asarray(s.values, np.float64).reshape(-1, len(g.joints))
            named = ~np.isnan(positions)
            never = {j for i, j in enumerate(g.joints) if not named[:, i].any()}
            if never:
                problems.append(
                    f'topic {s.topic}: no {s.msgtype.rsplit("/", 1)[-1]} message names joints '
                    f'{[j for j in g.joints if j in never]} (profile key {_key(g, "joints")}'
                    f'{"; the messages name " + str(s.names_seen) if s.names_seen else ""})')
        if a is not None and id(a) in errors:
            err = errors[id(a)]
            blamed = (isinstance(err, MissingJointsError) and set(err.missing) <= never
                      and tuple(g.action.names) == tuple(g.joints))
            if not blamed:
                problems.append(f'topic {a.topic}: {err}')
    others = [*streams.cameras.values(), *streams.extra, *streams.extra_actions,
              *(x for x in (streams.markers, streams.task) if x is not None)]
    for s in others:
        if id(s) in errors:
            image_error |= isinstance(errors[id(s)], ImageDecodeError)
            problems.append(f'topic {s.topic}: {errors[id(s)]}')
    for s, spec in zip(streams.extra, profile.extra_state):
        if spec.joints and id(s) not in errors and not len(s):
            problems.append(f'topic {s.topic}: no JointState message names joints '
                            f'{list(spec.joints)}')
    if problems:
        raise _problems(bag.path, list(dict.fromkeys(problems)),
                        ImageDecodeError if image_error and len(problems) == 1 else IngestError)


def _state_handler(group: ArmSpec, stream: Stream) -> Handler:
    joints = set(group.joints)
    msgtype = stream.msgtype

    controller = msgtype == CONTROLLER_STATE
    relevant: dict[tuple[str, ...], bool] = {}  # name list -> names any wanted joint

    def value(msg: Any, log_ns: int) -> Any:
        names = tuple(msg.joint_names if controller else msg.name)
        wanted = relevant.get(names)
        if wanted is None:
            if not names:
                what = 'JointTrajectoryControllerState' if controller else 'JointState'
                msg_ = f'{what} without joint names; cannot order its positions by name'
                raise IngestError(msg_)
            if not stream.names_seen:
                stream.names_seen = list(names)
            wanted = relevant[names] = bool(joints.intersection(names))
        if not wanted:
            return None  # only other joints (another robot part on the same topic)
        # arm and gripper drivers may publish separate messages on one topic: NaN = not named
        if controller:
            return controller_positions(msg, group.joints, 'state', group.state_field,
                                        allow_missing=True)
        return joint_positions(msg, group.joints, allow_missing=True)

    return value


class _Trajectory(NamedTuple):
    """A multi-point JointTrajectory: point offsets (ns) from the message time, positions."""

    offsets: npt.NDArray[np.int64]
    positions: npt.NDArray[np.float64]


def _action_handler(group: ArmSpec, msgtype: str) -> Handler:
    names = group.action.names

    def value(msg: Any, log_ns: int) -> Any:
        if msgtype == 'trajectory_msgs/msg/JointTrajectory' and len(msg.points) > 1:
            return _Trajectory(*trajectory_points(msg, names))
        return command_values(msg, msgtype, names, field=group.action.field)

    return value


def _extra_value(msg: Any, log_ns: int, *, msgtype: str, joints: tuple[str, ...]) -> Any:
    if joints and not set(joints).intersection(msg.name):
        return None
    return extra_state_values(msg, msgtype, joints=joints)


def _add_transforms(tree: TfTree, msg: Any, log_ns: int, *, static: bool) -> None:
    for tr in msg.transforms:
        st = tr.header.stamp
        t = int(st.sec) * 1_000_000_000 + int(getattr(st, 'nanosec', 0) or getattr(st, 'nsec', 0))
        v, q = tr.transform.translation, tr.transform.rotation
        tree.add(str(tr.header.frame_id), str(tr.child_frame_id), t if t > 0 else log_ns,
                 [float(v.x), float(v.y), float(v.z), float(q.x), float(q.y), float(q.z),
                  float(q.w)], static=static, log_ns=log_ns)


def _tf_stream(s: Stream, tree: TfTree, parent: str, child: str, bag: BagReader) -> None:
    """The pose of ``child`` in ``parent`` at the samples of the path's moving edges (their
    stamps, with their messages' log times: the clock is chosen like any topic's); a path of
    static transforms only is constant over the bag (log time, no stamps)."""
    try:
        times = tree.sample_times(parent, child)
        logs = tree.sample_logs(parent, child, times)
        stamps: list[int | None] = list(times.tolist())
        if not len(times):
            times = logs = np.asarray([bag.start_ns, bag.end_ns], np.int64)
            stamps = [None, None]
        poses, _ = tree.lookup(parent, child, times)
    except IngestError as err:
        raise _fail(bag.path, s.topic, str(err)) from err
    s.log_ns = logs.tolist()
    s.stamp_ns = stamps
    s.values = list(poses)


def _video_stream(streams: BagStreams, cam: CameraSpec, bag: BagReader) -> None:
    """Frame times of a video camera (the rule in ``bag_tools.video``); values: frame index."""
    path = find_video(bag.path, cam.file or '')
    assert path is not None  # checked with the topics
    try:
        pts = frame_pts(path)
    except ImageDecodeError as err:
        msg = f'{bag.path}: camera {cam.role}: {err}'
        raise ImageDecodeError(msg) from err
    n = len(pts)
    info: dict[str, Any] = {'file': str(path), 'frames': n}
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if cam.stamps_topic:
        s = streams.cameras[cam.role]
        if len(s) != n:
            log.warning('%s: camera %s: %d messages on %s for %d video frames; using the first '
                        '%d', bag.path, cam.role, len(s), cam.stamps_topic, n, min(n, len(s)))
        keep = min(n, len(s))
        s.log_ns, s.stamp_ns, s.values = s.log_ns[:keep], s.stamp_ns[:keep], s.values[:keep]
        info.update(timing='stamps_topic', stamps_topic=cam.stamps_topic, offset_s=None)
    else:
        if sidecar.is_file():
            times = read_sidecar(sidecar)
            if len(times) != n:
                msg = (f'{bag.path}: camera {cam.role}: {sidecar.name} has {len(times)} stamps '
                       f'for {n} video frames')
                raise ImageDecodeError(msg)
            info.update(timing='sidecar', sidecar=str(sidecar), offset_s=None)
        else:
            times = bag.start_ns + np.round((cam.offset_s + pts) * 1e9).astype(np.int64)
            info.update(timing='container', offset_s=cam.offset_s)
        # on the bag's log clock (bag start, or ns since the epoch): no header stamps
        s = Stream(f'video:{cam.file}', 'video', log_ns=times.tolist(),
                   stamp_ns=[None] * n, values=list(range(n)))
        streams.cameras[cam.role] = s
    streams.videos[cam.role] = {**info, 'path': path}


_PENDING = object()


def _image_handler(cam: CameraSpec, size: tuple[int, int]) -> Handler:
    def handle(msg: Any, log_ns: int) -> Any:
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
        if any(isinstance(v, _Trajectory) for v in s.values):
            action = np.zeros((len(grid), width), np.float64)
            for t in np.flatnonzero(valid):
                v = s.values[int(idx[t])]
                if isinstance(v, _Trajectory):
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
