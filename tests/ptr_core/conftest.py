"""Fixtures for ptr_core tests: tiny synthetic datasets in the real format and tiny configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from ptr_core.configuration import TrainConfig, load_config
from ptr_core.synthetic import make_synthetic_dataset

TINY = [
    'steps=6',
    'batch_size=8',
    'seed=0',
    'device=cpu',
    'log_every=2',
    'val_every=0',
    'save_every=100',
    'ema_decay=0.9',
    'policy.chunk_length=4',
    'data.obs_horizon=2',
    'data.image_shift=0',
    'data.val_fraction=0.0',
    'policy.unet_dims=[16, 32]',
    'policy.time_embed_dim=16',
    'policy.train_timesteps=20',
    'policy.inference_steps=3',
    'policy.encoder.channels=[8, 16]',
    'policy.encoder.image_feature_dim=16',
    'policy.encoder.state_hidden=32',
    'policy.encoder.robot_embed_dim=8',
    'policy.encoder.context_dim=32',
    'optim.lr=1e-3',
    'optim.warmup_steps=1',
]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def state_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State-only, one robot (3 joints), 6 episodes of 20 steps, two source tags."""
    root = tmp_path_factory.mktemp('state') / 'ds'
    make_synthetic_dataset(root, robot='arm', episodes=6, length=20, state_dim=3,
                           sources=['expert', 'noisy'], seed=1)
    return root


@pytest.fixture(scope='session')
def image_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two robots (3 and 2 joints); 'arm' has cameras front+wrist, 'gripper' only front."""
    root = tmp_path_factory.mktemp('images') / 'ds'
    make_synthetic_dataset(root, robot='arm', episodes=3, length=14, state_dim=3,
                           cameras=('front', 'wrist'), image_size=(16, 16), seed=2)
    make_synthetic_dataset(root, robot='gripper', episodes=2, length=12, state_dim=2,
                           cameras=('front',), image_size=(16, 16), seed=3, task='grasp')
    return root


TinyConfig = Callable[..., TrainConfig]

#: The trust tests' base policy: a flow head a few steps on a state set (only its encoder is read).
BASE = [
    'val_every=0', 'data.val_fraction=0.0', 'policy.chunk_length=4', 'policy.head=flow',
    'policy.unet_dims=[16,32]', 'policy.time_embed_dim=16', 'policy.encoder.state_hidden=32',
    'policy.encoder.context_dim=32', 'device=cpu',
]
TrainBase = Callable[..., Path]


@pytest.fixture(scope='session')
def train_base() -> TrainBase:
    """``train_base(dataset, out, steps=4, batch_size=16, log_every=2, 'key=value', ...)`` →
    the final checkpoint of a base trained ``steps`` steps on ``dataset`` (``BASE`` settings)."""
    from ptr_core.trainer import train

    def make(dataset: Path, out: Path, *extra: str, steps: int = 4, batch_size: int = 16,
             log_every: int = 2) -> Path:
        cfg = load_config(None, [
            *BASE, f'data.datasets=[{str(dataset)!r}]', f'out_dir={str(out)!r}',
            f'steps={steps}', f'save_every={steps}', f'batch_size={batch_size}',
            f'log_every={log_every}', *extra,
        ])
        result = train(cfg)
        assert result.final is not None
        return result.final

    return make


@pytest.fixture
def tiny_config() -> TinyConfig:
    """``tiny_config(dataset, out_dir, 'key=value', ...)`` → a seconds-on-CPU TrainConfig."""

    def make(dataset: Path | list[Path], out: Path, *extra: str) -> TrainConfig:
        paths = dataset if isinstance(dataset, list) else [dataset]
        sets = [*TINY, 'data.datasets=[' + ', '.join(f"'{p}'" for p in paths) + ']',
                f"out_dir='{out}'", *extra]
        return load_config(None, sets)

    return make
