"""Meta-World rollouts → real ROS 2 bags (MCAP), one bag per episode, with quality tags.

Each bag holds, stamped on the simulator clock (80 Hz control steps, starting at ``start_ns``):

* the setup's ``sensor_msgs/JointState`` at every step (before the action),
* object and goal positions (setup a: ``PointStamped``) or poses (setup b: ``PoseStamped``) at
  every step, as the lab's tracker would publish them,
* ``sensor_msgs/CompressedImage`` JPEG for each camera every ``camera_stride`` steps,
* the recorded action label as ``std_msgs/Float64MultiArray`` on the command topic (no header:
  its log time is the control tick),
* ``std_msgs/String`` with the task name at the first step.

The rosbag2 metadata's ``custom_data`` carries ``ptr.source`` (the quality tag), ``ptr.success``
(``'true'``/``'false'``), ``ptr.task``, ``ptr.setup``, ``ptr.seed`` and
``ptr.low_attribution``; ``ptr ingest`` copies them into each episode's tags.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bag_tools.lifetime import spawn_pool
from ptr_core.errors import PtrError
from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.setups import ACTION_NAMES, SimSetup, get_setup, pose_values, state_values
from ptr_sim.sources import Rollout, Source, rollout

__all__ = [
    'EpisodeRequest', 'RecordedEpisode', 'plan_episodes', 'record', 'write_bag',
    'write_profile',
]

log = logging.getLogger(__name__)

START_NS = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z: the simulated clock's origin


@dataclass(frozen=True)
class EpisodeRequest:
    task: str
    setup: str
    source: str
    seed: int
    index: int  # position in the recording, for the bag name and the clock


@dataclass(frozen=True)
class RecordedEpisode:
    path: Path
    task: str
    setup: str
    source: str
    seed: int
    success: bool
    length: int


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_HUMBLE)


class _Messages:
    """Builds rosbags message objects for one setup."""

    def __init__(self, setup: SimSetup) -> None:
        self.setup = setup
        self.ts = _typestore()
        t = self.ts.types
        self.Time = t['builtin_interfaces/msg/Time']
        self.Header = t['std_msgs/msg/Header']
        self.JointState = t['sensor_msgs/msg/JointState']
        self.CompressedImage = t['sensor_msgs/msg/CompressedImage']
        self.PoseStamped = t['geometry_msgs/msg/PoseStamped']
        self.PointStamped = t['geometry_msgs/msg/PointStamped']
        self.Pose = t['geometry_msgs/msg/Pose']
        self.Point = t['geometry_msgs/msg/Point']
        self.Quaternion = t['geometry_msgs/msg/Quaternion']
        self.Float64MultiArray = t['std_msgs/msg/Float64MultiArray']
        self.Layout = t['std_msgs/msg/MultiArrayLayout']
        self.Dim = t['std_msgs/msg/MultiArrayDimension']
        self.String = t['std_msgs/msg/String']

    def header(self, ns: int, frame: str) -> Any:
        return self.Header(stamp=self.Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000),
                           frame_id=frame)

    def joint_state(self, ns: int, position: npt.NDArray[np.float64]) -> Any:
        empty = np.zeros(0, dtype=np.float64)
        return self.JointState(header=self.header(ns, ''), name=list(self.setup.joints),
                               position=position.astype(np.float64), velocity=empty,
                               effort=empty)

    def pose(self, ns: int, p: npt.NDArray[np.float64]) -> Any:
        if self.setup.pose_type.endswith('PointStamped'):
            return self.PointStamped(header=self.header(ns, self.setup.frame_id),
                                     point=self.Point(x=p[0], y=p[1], z=p[2]))
        return self.PoseStamped(
            header=self.header(ns, self.setup.frame_id),
            pose=self.Pose(position=self.Point(x=p[0], y=p[1], z=p[2]),
                           orientation=self.Quaternion(x=p[3], y=p[4], z=p[5], w=p[6])),
        )

    def image(self, ns: int, role: str, rgb: npt.NDArray[np.uint8], quality: int) -> Any:
        ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            msg = f'JPEG encoding failed for camera {role}'
            raise PtrError(msg)
        return self.CompressedImage(header=self.header(ns, f'{role}_camera_optical_frame'),
                                    format='jpeg', data=np.asarray(buf, dtype=np.uint8).ravel())

    def command(self, action: npt.NDArray[np.float64]) -> Any:
        dim = self.Dim(label='action', size=len(ACTION_NAMES), stride=len(ACTION_NAMES))
        return self.Float64MultiArray(layout=self.Layout(dim=[dim], data_offset=0),
                                      data=action.astype(np.float64))


def write_bag(
    ro: Rollout,
    setup: SimSetup,
    path: Path,
    *,
    start_ns: int = START_NS,
    period_ns: int = 12_500_000,
    jpeg_quality: int = 90,
) -> Path:
    """Write ``ro`` as an MCAP rosbag2 directory at ``path`` (replaced if it exists)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    m = _Messages(setup)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    with writer:
        conns: dict[str, Any] = {}

        def add(topic: str, msgtype: str) -> None:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=m.ts)

        add(setup.state_topic, 'sensor_msgs/msg/JointState')
        add(setup.command_topic, 'std_msgs/msg/Float64MultiArray')
        add(setup.task_topic, 'std_msgs/msg/String')
        for _, topic in setup.poses:
            add(topic, setup.pose_type)
        cameras = [c for c in setup.cameras if ro.images.get(c.role)]
        for cam in cameras:
            add(cam.topic, 'sensor_msgs/msg/CompressedImage')

        def put(topic: str, ns: int, msg: Any) -> None:
            writer.write(conns[topic], ns, m.ts.serialize_cdr(msg, msg.__msgtype__))

        put(setup.task_topic, start_ns, m.String(data=ro.task))
        for t in range(ro.length + 1):
            ns = start_ns + t * period_ns
            put(setup.state_topic, ns, m.joint_state(ns, state_values(setup, ro.obs[t],
                                                                      ro.fingers[t])))
            poses = pose_values(ro.obs[t])
            for name, topic in setup.poses:
                put(topic, ns, m.pose(ns, poses[name]))
            for cam in cameras:
                frame = ro.images[cam.role].get(t)
                if frame is not None:
                    put(cam.topic, ns, m.image(ns, cam.role, frame, jpeg_quality))
            if t < ro.length:
                put(setup.command_topic, ns, m.command(ro.recorded[t]))
        writer.set_custom_data('ptr.source', ro.source.tag)
        writer.set_custom_data('ptr.success', 'true' if ro.success else 'false')
        writer.set_custom_data('ptr.task', ro.task)
        writer.set_custom_data('ptr.setup', setup.name)
        writer.set_custom_data('ptr.seed', str(ro.seed))
        writer.set_custom_data('ptr.low_attribution',
                               'true' if ro.source.low_attribution else 'false')
    return path


def plan_episodes(
    tasks: Sequence[str], setups: Sequence[str], mix: dict[str, int], *, seed: int = 0
) -> list[EpisodeRequest]:
    """``mix[source]`` episodes per task, spread round-robin over ``setups``.

    Seeds are distinct per episode and below ``EVAL_SEED_OFFSET``, so evaluation goals (drawn at
    and above it) are never recorded.
    """
    for name in setups:
        get_setup(name)
    out: list[EpisodeRequest] = []
    for task in tasks:
        k = 0
        for source, count in mix.items():
            Source.parse(source)
            for _ in range(count):
                s = (seed * 1_000_003 + len(out) * 7919 + 1) % (EVAL_SEED_OFFSET // 2)
                out.append(EpisodeRequest(task, setups[k % len(setups)], source, s, len(out)))
                k += 1
    return out


_ENVS: dict[tuple[str, int], MetaWorldEnv] = {}


def _record_one(
    req: EpisodeRequest, out: str, options: dict[str, Any]
) -> RecordedEpisode:
    key = (req.task, int(options['image_size']))
    env = _ENVS.get(key)
    if env is None:
        env = _ENVS[key] = MetaWorldEnv(req.task, image_size=int(options['image_size']))
    setup = get_setup(req.setup)
    ro = rollout(env, setup, Source.parse(req.source), req.seed,
                 max_steps=int(options['max_steps']), camera_stride=int(options['camera_stride']),
                 render=bool(options['render']), settle_steps=options['settle_steps'])
    name = f'{req.task}__{req.source}__{req.index:05d}'
    path = Path(out) / f'setup_{req.setup}' / name
    # Episodes sit 10 s apart on the simulated clock, as consecutive recordings would.
    start = START_NS + req.index * 10 * 1_000_000_000
    write_bag(ro, setup, path, start_ns=start, period_ns=round(1e9 * env.dt))
    return RecordedEpisode(path, req.task, req.setup, req.source, req.seed, ro.success,
                           ro.length)


def record(
    requests: Sequence[EpisodeRequest],
    out: str | Path,
    *,
    image_size: int = 96,
    camera_stride: int = 4,
    max_steps: int = 150,
    render: bool = True,
    settle_steps: int | None = 10,
    workers: int = 1,
    on_episode: Callable[[RecordedEpisode], None] | None = None,
) -> list[RecordedEpisode]:
    """Record every request into ``out/setup_<s>/<task>__<source>__<index>`` (MCAP bags);
    each episode ends ``settle_steps`` after its first success, or at ``max_steps`` (``None``:
    always at ``max_steps``, a fixed horizon)."""
    options: dict[str, Any] = {'image_size': image_size, 'camera_stride': camera_stride,
                               'max_steps': max_steps, 'render': render,
                               'settle_steps': settle_steps}
    Path(out).mkdir(parents=True, exist_ok=True)
    done: list[RecordedEpisode] = []
    if workers <= 1 or len(requests) <= 1:
        for req in requests:
            ep = _record_one(req, str(out), options)
            done.append(ep)
            if on_episode is not None:
                on_episode(ep)
        return done
    with spawn_pool(workers) as pool:
        futures = [pool.submit(_record_one, req, str(out), options) for req in requests]
        for fut in futures:
            ep = fut.result()
            done.append(ep)
            if on_episode is not None:
                on_episode(ep)
    return done


def write_profile(setup: str, out: str | Path, *, cameras: bool = True) -> Path:
    """Write the setup's robot profile to ``out`` (without cameras for state-only data)."""
    import yaml

    from bag_tools.profile import RobotProfile, load_profile

    profile = load_profile(get_setup(setup).profile).to_dict()
    if not cameras:
        profile['cameras'] = {}
    RobotProfile.from_dict(profile, source=str(out))  # still valid
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path
