"""Small synthetic datasets in the real on-disk format, for tests, benchmarks and demos.

A point robot reaches a goal from a random start: ``a_t = clip(0.6·(goal - s_t), ±1)``,
``s_{t+1} = s_t + 0.5·a_t``. The goal is one per dataset (``goal_per_episode=True`` draws one per
episode, which the state then does not reveal). Cameras (optional) show a bright square at the
state's first two coordinates, so the action is a function of the observation.
Written through ``bag_tools.dataset.write_episode`` + ``Dataset.add_episodes``, exactly as
``ptr ingest`` writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import Dataset, EpisodeData, RobotEntry, write_episode
from bag_tools.errors import BagToolsError
from bag_tools.ingest import robot_entry as ingest_robot_entry
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError

__all__ = ['make_synthetic_dataset', 'robot_entry', 'synthetic_profile']


def synthetic_profile(
    robot: str,
    *,
    state_dim: int,
    action_dim: int,
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (32, 32),
    rate_hz: float = 10.0,
) -> RobotProfile:
    """The robot profile of a synthetic robot, validated as every profile is: joints on a
    ``JointState`` topic, commands on a command topic, cameras on image topics."""
    joints = [f'{robot}_joint{i}' for i in range(state_dim)]
    spec: dict[str, Any] = {
        'robot': robot,
        'joints': joints,
        'state_topic': f'/{robot}/joint_states',
        'action': {'source': 'command', 'topic': f'/{robot}/commands',
                   'names': [f'{robot}_cmd{i}' for i in range(action_dim)],
                   'limits': {'lower': [-2.0] * action_dim, 'upper': [2.0] * action_dim}},
        'joint_limits': {'lower': [-2.0] * state_dim, 'upper': [2.0] * state_dim},
        'cameras': {c: {'topic': f'/{robot}/{c}/image_raw'} for c in cameras},
        'rate_hz': rate_hz,
        'task': 'reach',
    }
    if cameras:
        spec['image_size'] = [int(image_size[0]), int(image_size[1])]
    try:
        return RobotProfile.from_dict(spec, source=f'synthetic:{robot}')
    except BagToolsError as err:
        raise PtrError(str(err)) from err


def robot_entry(
    robot: str,
    *,
    state_dim: int,
    action_dim: int,
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (32, 32),
    rate_hz: float = 10.0,
) -> RobotEntry:
    """The manifest record of a synthetic robot, written the way ``ptr ingest`` writes it."""
    return ingest_robot_entry(synthetic_profile(
        robot, state_dim=state_dim, action_dim=action_dim, cameras=cameras,
        image_size=image_size, rate_hz=rate_hz))


def _render(
    state: npt.NDArray[np.float32], goal: npt.NDArray[np.float32], size: tuple[int, int],
    shade: int,
) -> npt.NDArray[np.uint8]:
    h, w = size
    frames = np.zeros((len(state), h, w, 3), np.uint8)
    frames[..., 0] = np.uint8(int(64 + 60 * np.tanh(goal[0])))
    frames[..., 2] = np.uint8(shade)
    half = max(1, min(h, w) // 8)
    for t, s in enumerate(state):
        cy = int(np.clip((s[0] + 2) / 4, 0, 1) * (h - 1))
        cx = int(np.clip((s[1 % len(s)] + 2) / 4, 0, 1) * (w - 1))
        frames[t, max(0, cy - half): cy + half + 1, max(0, cx - half): cx + half + 1, 1] = 255
    return frames


def _reach(
    s: npt.NDArray[np.float32], goal: npt.NDArray[np.float32], length: int, action_dim: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``length`` steps of the point robot from ``s`` towards ``goal``: states and actions."""
    state_dim = len(s)
    states, actions = [], []
    for _ in range(length):
        a = np.clip(0.6 * (goal - s), -1.0, 1.0).astype(np.float32)
        a_full = np.zeros(action_dim, np.float32)
        a_full[: min(action_dim, state_dim)] = a[: min(action_dim, state_dim)]
        states.append(s.copy())
        actions.append(a_full)
        s = (s + 0.5 * np.resize(a_full, state_dim)).astype(np.float32)
    return np.stack(states), np.stack(actions)


def make_synthetic_dataset(
    root: str | Path,
    *,
    robot: str = 'sim_arm',
    episodes: int = 6,
    length: int = 40,
    state_dim: int = 4,
    action_dim: int | None = None,
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (32, 32),
    rate_hz: float = 10.0,
    task: str = 'reach',
    sources: Sequence[str] | None = None,
    seed: int = 0,
    goal_per_episode: bool = False,
) -> Dataset:
    """Append ``episodes`` synthetic episodes of ``robot`` to the dataset at ``root``.

    ``sources`` (cycled over episodes) become the ``ptr.source`` episode tag.
    """
    action_dim = state_dim if action_dim is None else action_dim
    rng = np.random.default_rng(seed)
    ds = Dataset.create_or_open(root, rate_hz=rate_hz)
    start = len(ds)
    written = []
    shared_goal = rng.uniform(-1.0, 1.0, state_dim).astype(np.float32)
    for i in range(episodes):
        goal = (rng.uniform(-1.5, 1.5, state_dim).astype(np.float32) if goal_per_episode
                else shared_goal)
        s = rng.uniform(-1.5, 1.5, state_dim).astype(np.float32)
        state, action = _reach(s, goal, length, action_dim)
        images = {c: _render(state, goal, image_size, 40 * k) for k, c in enumerate(cameras)}
        tags = {'ptr.source': sources[i % len(sources)]} if sources else {}
        ep = EpisodeData(
            id=f'{robot}_{start + i:04d}',
            robot=robot,
            timestamp=(np.arange(length, dtype=np.int64) * int(1e9 / rate_hz)),
            state=state,
            action=action,
            state_valid=np.ones(length, bool),
            action_valid=np.ones(length, bool),
            images=images,
            image_valid={c: np.ones(length, bool) for c in cameras},
            task=task,
            source=f'synthetic://{robot}/{start + i}',
            content_hash=f'synthetic-{robot}-{seed}-{start + i}',
            tags=tags,
        )
        write_episode(Path(root), ep)
        written.append(ep)
    entry = robot_entry(robot, state_dim=state_dim, action_dim=action_dim, cameras=cameras,
                        image_size=image_size, rate_hz=rate_hz)
    ds.add_episodes(written, robots={robot: entry})
    return ds
