"""Setup c, cameras only: the arm's own joints and two cameras, no tracker poses anywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bag_tools.profile import load_profile
from bag_tools.reader import open_bag
from ptr_core.errors import ConfigError
from ptr_sim.benchmark_config import load_benchmark_config
from ptr_sim.env import MetaWorldEnv
from ptr_sim.recorder import plan_episodes, record
from ptr_sim.setups import SETUPS, flat_state, get_setup
from ptr_sim.sources import Source, rollout

TASK = 'push-v3'
SIZE = 64


def test_cameras_only_episode_has_no_poses_and_moving_frames(tmp_path: Path) -> None:
    """A recorded, ingested setup-c episode: state is the 4 arm values (no object or goal
    position), both cameras are there at 64x64 on every control step the ingest aligns, and the
    frames change as the arm moves."""
    from bag_tools.dataset import Dataset
    from bag_tools.ingest import ingest

    setup = get_setup('c')
    assert setup.cameras_only
    assert all(s.poses for s in SETUPS.values() if s.name != 'c')
    reqs = plan_episodes([TASK], ['c'], {'expert': 1}, seed=3)
    (ep_rec,) = record(reqs, tmp_path / 'bags', max_steps=60, image_size=SIZE)
    with open_bag(ep_rec.path) as reader:
        topics = set(reader.topics())
    assert not any('tracker' in t or 'mocap' in t or 'pose' in t for t in topics)
    assert {c.topic for c in setup.cameras} <= topics

    res = ingest([tmp_path / 'bags' / 'setup_c'], load_profile(setup.profile), tmp_path / 'ds')
    assert res.ok
    (ep,) = list(Dataset.open(tmp_path / 'ds').episodes())
    env = MetaWorldEnv(TASK, image_size=SIZE)
    ro = rollout(env, setup, Source.parse('expert'), reqs[0].seed, max_steps=60, render=False)
    env.close()
    assert ep.state.shape[1] == len(setup.joints) == 4
    want = np.stack([flat_state(setup, o, f) for o, f in zip(ro.obs, ro.fingers)])
    assert want.shape[1] == 4
    assert np.allclose(ep.state[: len(want)], want, atol=1e-6)
    # the goal (obs 36:39) and the object (obs 4:7) are nowhere in the state
    goal = ro.obs[0, 36:39]
    assert not np.any(np.isclose(ep.state[0, :3], goal[None], atol=1e-4).all(axis=-1))
    assert set(ep.images) == {'corner', 'wrist'}
    for role, frames in ep.images.items():
        assert frames.shape[1:] == (SIZE, SIZE, 3), role
        assert frames.dtype == np.uint8
        valid = frames[ep.image_valid[role]]
        assert len(valid) >= 10
        first, last = valid[0].astype(np.float64), valid[-1].astype(np.float64)
        # the arm moved: the frames differ by more than JPEG noise (a few grey levels)
        assert np.abs(last - first).mean() > 0.05 * first.mean(), role


def test_cameras_only_setup_needs_images() -> None:
    with pytest.raises(ConfigError, match='cameras-only'):
        load_benchmark_config('tiny', ['setups=[c]'])
    cfg = load_benchmark_config('tiny', ['setups=[c]', 'images=true'])
    assert cfg.setups == ('c',)


def test_cameras_cpu_preset_is_cameras_only() -> None:
    """The preset trains image policies on setup c at 64x64, with a pretrained base on other
    tasks (the encoder's pretraining) and the random shift on, and refuses nothing."""
    cfg = load_benchmark_config('cameras_cpu')
    assert cfg.setups == ('c',)
    assert cfg.images
    assert cfg.image_size == 64
    assert cfg.pretrain_tasks
    assert cfg.pretrain_episodes > 0
    assert not set(cfg.pretrain_tasks) & set(cfg.tasks)
    assert set(cfg.tasks) <= {'push-v3', 'pick-place-v3'}  # goals drawn in the images
    assert 'data.image_shift=4' in cfg.train_overrides
    assert cfg.workers == 2


def test_gpu_preset_is_the_cameras_only_setting_at_full_size() -> None:
    """Issue 27: the gpu preset trains the same observations as cameras_cpu (setup c), larger,
    on one CUDA device with bf16 and torch.compile, its trust scored on that device."""
    small, cfg = load_benchmark_config('cameras_cpu'), load_benchmark_config('gpu')
    assert cfg.setups == small.setups == ('c',)
    assert cfg.images
    assert cfg.image_size > small.image_size
    assert set(cfg.tasks) == set(small.tasks)
    assert not set(cfg.pretrain_tasks) & set(cfg.tasks)
    assert cfg.device == 'cuda'
    assert {'amp=bf16', 'compile=true'} <= set(cfg.train_overrides)
    assert set(cfg.heads) == {'flow', 'diffusion'}
    assert len(cfg.seeds) >= 3


def test_the_benchmark_device_reaches_every_training_run(tmp_path: Path) -> None:
    """``device`` (``ptr benchmark --device``) wins over the preset's train_overrides and keys
    the cell cache; '' (every preset but gpu) leaves both as they were."""
    from ptr_sim.benchmark.cache import _train_fingerprint
    from ptr_sim.benchmark.stages import _train_config

    plain = load_benchmark_config('cameras_cpu')
    assert plain.device == ''
    method = plain.methods[0]
    args = {'datasets': [tmp_path], 'head': 'flow', 'steps': 5, 'seed': 0, 'method': method}
    assert _train_config(plain, tmp_path, **args).device == 'cpu'  # its train_overrides'
    auto = load_benchmark_config('cameras_cpu', ['device=auto'])
    assert _train_config(auto, tmp_path, **args).device == 'auto'
    assert _train_fingerprint(auto, 5) != _train_fingerprint(plain, 5)
    with pytest.raises(ConfigError, match='device'):
        load_benchmark_config('tiny', ['device=tpu'])
