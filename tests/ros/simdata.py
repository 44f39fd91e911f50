"""A sim-arm robot end to end for the node tests: profile -> bags -> ``ptr ingest`` -> checkpoint.

The bags hold what ``sim_arm_node`` publishes (joint states and ``render_arm`` camera frames) on
exact 10 Hz stamps, so every dataset frame has one bag message per topic at its grid time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bag_tools'))

from bagfactory import BagContent, encode_jpeg, write_bag

from ptr_ros.sim_arm import render_arm

T0 = 1_750_000_000_000_000_000
JOINTS = ['joint_1', 'joint_2', 'joint_3']
RATE_HZ = 10.0
SOURCE_SIZE = (48, 64)  # what the camera sends; the profile resizes to IMAGE_SIZE
IMAGE_SIZE = (24, 32)
LIMIT = 1.5


POSE_TOPIC = '/tool_pose'
GRIPPER_TOPIC = '/gripper/joint_states'


def profile_dict(
    *, compressed: bool = False, pose: bool = False, gripper: bool = False
) -> dict[str, Any]:
    """The sim arm's robot profile; ``pose`` adds a PoseStamped extra observation, ``gripper``
    a JointState extra (the gripper publishing on its own topic)."""
    camera_topic = '/camera/front/image_raw' + ('/compressed' if compressed else '')
    extra: list[dict[str, Any]] = []
    if pose:
        extra.append({'topic': POSE_TOPIC, 'type': 'geometry_msgs/msg/PoseStamped',
                      'name': 'tool'})
    if gripper:
        extra.append({'topic': GRIPPER_TOPIC, 'type': 'sensor_msgs/msg/JointState',
                      'name': 'gripper', 'joints': ['finger']})
    return {
        'robot': 'sim_arm',
        'joints': list(JOINTS),
        'state_topic': '/joint_states',
        'action': {'source': 'next_state'},
        'cameras': {'front': {'topic': camera_topic}},
        'image_size': list(IMAGE_SIZE),
        'rate_hz': RATE_HZ,
        'joint_limits': {'lower': [-LIMIT] * 3, 'upper': [LIMIT] * 3},
        'task': 'reach',
        'min_episode_steps': 8,
        'extra_state': extra,
    }


def trajectory(episode: int, n: int) -> np.ndarray:
    """Smooth joint paths ``[n, 3]`` well inside the limits, different per episode."""
    t = np.arange(n) / RATE_HZ
    phase = 0.7 * episode
    return np.stack([
        0.8 * np.sin(0.9 * t + phase),
        0.5 * np.cos(0.6 * t + phase) - 0.2,
        0.6 * np.sin(1.3 * t + 2 * phase),
    ], axis=1)


def tool_pose(q: np.ndarray) -> tuple[list[float], list[float]]:
    """A made-up end-effector pose of joint positions ``q``: xyz and a unit quaternion."""
    xyz = [float(np.cos(q[0])), float(np.sin(q[1])), float(q[2])]
    half = q[0] / 2
    return xyz, [0.0, 0.0, float(np.sin(half)), float(np.cos(half))]


def bag_content(
    episode: int, *, frames: int = 60, compressed: bool = False, pose: bool = False,
    gripper: bool = False,
) -> BagContent:
    content = BagContent()
    q = trajectory(episode, frames)
    topic = '/camera/front/image_raw' + ('/compressed' if compressed else '')
    for k in range(frames):
        ns = T0 + episode * 100_000_000_000 + round(k * 1e9 / RATE_HZ)
        # Joint names in another order than the profile, plus a gripper: reordered by name.
        content.joint_state('/joint_states', ns, ['gripper', 'joint_3', 'joint_1', 'joint_2'],
                            [0.01, q[k, 2], q[k, 0], q[k, 1]])
        if pose:
            content.pose(POSE_TOPIC, ns, *tool_pose(q[k]))
        if gripper:
            content.joint_state(GRIPPER_TOPIC, ns, ['finger'], [0.04 * (1 + np.sin(0.3 * k))])
        img = render_arm(q[k], SOURCE_SIZE)
        if compressed:
            content.compressed_image(topic, ns, encode_jpeg(img), fmt='rgb8; jpeg compressed bgr8')
        else:
            content.image(topic, ns, img, 'rgb8')
    return content


def write_bags(
    directory: Path, *, episodes: int = 3, frames: int = 60, compressed: bool = False,
    pose: bool = False, gripper: bool = False,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    return [write_bag(bag_content(e, frames=frames, compressed=compressed, pose=pose,
                                  gripper=gripper),
                      directory / f'sim_{e}', 'mcap')
            for e in range(episodes)]


def build_dataset(
    directory: Path, bags: list[Path], *, compressed: bool = False, pose: bool = False,
    gripper: bool = False,
) -> Path:
    from bag_tools.ingest import ingest
    from bag_tools.profile import RobotProfile

    out = directory / 'dataset'
    profile = RobotProfile.from_dict(
        profile_dict(compressed=compressed, pose=pose, gripper=gripper))
    result = ingest(bags, profile, out, workers=1)
    assert result.ok, [b.reason for b in result.bags]
    return out


def train_checkpoint(
    repo: Path, dataset: Path, out: Path, *, head: str = 'flow', steps: int = 30
) -> Path:
    """A tiny debug policy (``config/train/debug.yaml``), a few steps on the CPU."""
    import torch

    from ptr_core.configuration import load_config
    from ptr_core.trainer import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = load_config(repo / 'config' / 'train' / 'debug.yaml', [
            f'data.datasets=[{str(dataset)!r}]', f'out_dir={str(out)!r}', 'device=cpu',
            f'steps={steps}', 'val_every=0', 'save_every=1000', 'log_every=1000',
            f'policy.head={head}', 'data.val_fraction=0.0',
        ])
        started = time.monotonic()
        result = train(config)
        assert result.final is not None
        print(f'trained {head} debug checkpoint in {time.monotonic() - started:.1f} s')
        return Path(result.final)
    finally:
        torch.set_num_threads(threads)
