"""One bag + a robot profile → the profile's topics as decoded streams (``BagStreams``).

Every profile topic is read in log-time order; joint states, commands and extra observations are
decoded to vectors on the way and raw ``Image`` frames are decoded and resized at once. Of a
``CompressedImage`` (or a video file) only the stamps are kept: ``bag_tools.episodes`` decodes
just the frames a grid step uses once the grid is known, so memory stays bounded by the output,
not by the bag. Every bad input stops the bag with one line naming bag, topic and problem (all
the problems of a bag in that one line, so one run shows them all).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from bag_tools.errors import BagToolsError, ImageDecodeError, IngestError
from bag_tools.observation import (
    MissingJointsError,
    command_values,
    controller_positions,
    decode_image,
    extra_state_values,
    joint_positions,
    stamp_ns,
    trajectory_points,
)
from bag_tools.profile import (
    COMMAND_TYPES,
    CONTROLLER_STATE,
    STATE_TYPES,
    ArmSpec,
    CameraSpec,
    RobotProfile,
    normalize_msgtype,
)
from bag_tools.reader import BagReader, TopicInfo
from bag_tools.sync import Stream
from bag_tools.tf_tree import TfTree
from bag_tools.video import SIDECAR_SUFFIX, find_video, frame_pts, read_sidecar, video_name

__all__ = ['IMAGE_TYPES', 'BagStreams', 'Trajectory', 'read_streams']

log = logging.getLogger(__name__)

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
TF_STATIC = '/tf_static'

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


class Trajectory(NamedTuple):
    """A multi-point JointTrajectory: point offsets (ns) from the message time, positions."""

    offsets: npt.NDArray[np.int64]
    positions: npt.NDArray[np.float64]


def _action_handler(group: ArmSpec, msgtype: str) -> Handler:
    names = group.action.names

    def value(msg: Any, log_ns: int) -> Any:
        if msgtype == 'trajectory_msgs/msg/JointTrajectory' and len(msg.points) > 1:
            return Trajectory(*trajectory_points(msg, names))
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
