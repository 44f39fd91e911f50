"""Training windows, padding masks, future targets, vocabularies and the mixture sampler."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from bag_tools.dataset import Dataset
from ptr_core import batch as K
from ptr_core.configuration import TrainConfig
from ptr_core.data import DataBundle, MixtureSampler, build_data, make_loader, split_episodes
from ptr_core.errors import ConfigError, PtrError
from ptr_core.preprocess import Preprocessor
from ptr_core.synthetic import make_synthetic_dataset


def _data(cfg: TrainConfig, preprocessor: Preprocessor | None = None) -> DataBundle:
    """The config's data, cut into windows of its policy's chunk length."""
    return build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0,
                      preprocessor=preprocessor)


def test_window_contents_match_the_episode(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(state_dataset, Path('/unused'), 'policy.chunk_length=5',
                      'data.future_offset=3')
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    ds = Dataset.open(state_dataset)
    w = bundle.train
    # the last window of the first episode: t = 19 of 20 → 1 valid chunk step, no future
    ref_i, t = (int(v) for v in w.windows[0][19])
    assert t == 19
    s = w[(0, 19, 0)]
    ep = ds.episode(w.refs[ref_i].episode.id)
    pre = bundle.preprocessor
    np.testing.assert_allclose(s[K.ACTION][0].numpy(),
                               pre.normalizer.normalize_action(ep.action[19], 'arm'), rtol=1e-6)
    assert s[K.ACTION_MASK].tolist() == [[True] * 3] + [[False] * 3] * 4
    assert s[K.ACTION][1:].abs().sum() == 0
    assert not bool(s[K.FUTURE_VALID])
    # a middle window: the future is the state at t + Δ, normalized
    s = w[(0, 4, 0)]
    assert bool(s[K.FUTURE_VALID])
    assert int(s[K.FRAME_INDEX]) == 4
    np.testing.assert_allclose(s[K.FUTURE_STATE].numpy(),
                               pre.normalizer.normalize_state(ep.state[7], 'arm'), rtol=1e-6)
    np.testing.assert_allclose(s[K.OBS_STATE].numpy(),
                               pre.normalizer.normalize_state(ep.state[3:5], 'arm'), rtol=1e-6)
    assert s[K.ACTION_MASK].all()


def test_vocabularies_and_ids(state_dataset: Path, image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    bundle = _data(tiny_config([state_dataset, image_dataset], Path('/u')))
    assert bundle.vocab.sources == ('expert', 'noisy')
    assert bundle.vocab.tasks == ('grasp', 'reach')
    seen = {(int(s[K.DATASET_ID]), int(s[K.SOURCE_ID]), int(s[K.TASK_ID]), int(s[K.ROBOT_ID]))
            for s in (bundle.train[bundle.train.flat_index(i)] for i in range(len(bundle.train)))}
    assert (0, 0, 1, 0) in seen
    assert (0, 1, 1, 0) in seen
    assert (1, -1, 0, 1) in seen  # image dataset: gripper grasps, untagged → source -1
    eps = {int(bundle.train[bundle.train.flat_index(i)][K.EPISODE_ID])
           for i in range(len(bundle.train))}
    assert eps == set(range(11))  # global episode indices over both datasets


def test_sampler_is_a_pure_function_of_seed_and_step() -> None:
    sizes, weights = [50, 10], [3.0, 1.0]
    one = MixtureSampler(sizes, weights, batch_size=8, seed=5)
    stream = list(itertools.islice(iter(one), 8 * 500))
    # DDP: rank r takes sample numbers g ≡ r (mod world); together they are the global stream
    r0 = list(itertools.islice(iter(MixtureSampler(sizes, weights, batch_size=8, seed=5, rank=0,
                                                   world=2)), 4 * 500))
    r1 = list(itertools.islice(iter(MixtureSampler(sizes, weights, batch_size=8, seed=5, rank=1,
                                                   world=2)), 4 * 500))
    assert sorted(r0 + r1, key=lambda x: x[2]) == stream
    # resume at step 7 continues the same stream
    resumed = list(itertools.islice(iter(MixtureSampler(sizes, weights, batch_size=8, seed=5,
                                                        start_step=7)), 16))
    assert resumed == stream[56:72]
    share = np.mean([d == 0 for d, _, _ in stream])
    assert share == pytest.approx(0.75, abs=0.03)
    assert all(0 <= w < sizes[d] for d, w, _ in stream)
    other = list(itertools.islice(iter(MixtureSampler(sizes, weights, batch_size=8, seed=6)), 64))
    assert other != stream[:64]


def test_loader_batches_and_per_sample_noise(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(state_dataset, Path('/u'))
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    sampler = MixtureSampler(bundle.train.sizes, bundle.weights, batch_size=8, seed=0)
    loader = make_loader(bundle.train, sampler, batch_size=8, config=cfg.data,
                         device=torch.device('cpu'))
    batch = next(iter(loader))
    assert batch[K.OBS_STATE].shape == (8, 2, 3)
    assert batch[K.ACTION].shape == (8, 4, 3)
    assert batch[K.NOISE].shape == (8, 4, 3)
    assert batch[K.SAMPLE_INDEX].tolist() == list(range(8))
    # the noise of a sample depends only on its sample number, not on the batch it is in
    again = bundle.train[(0, 0, 3)]
    assert torch.equal(again[K.NOISE], batch[K.NOISE][3])
    assert 0.0 <= float(batch[K.NOISE_LEVEL].min()) < float(batch[K.NOISE_LEVEL].max()) < 1.0


def test_image_shift_augments_only_training(image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(image_dataset, Path('/u'), 'data.image_shift=3', 'data.val_fraction=0.3')
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    assert bundle.val is not None
    assert bundle.train.image_shift == 3
    assert bundle.val.image_shift == 0
    key = K.obs_image_key('front')
    shots = [bundle.train[(0, 2, g)][key] for g in range(6)]
    assert shots[0].shape == (2, 3, 16, 16)
    assert any(not torch.equal(shots[0], s) for s in shots[1:])


def test_split_and_errors(tmp_path: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    ids = [f'e{i}' for i in range(10)]
    train, val = split_episodes(ids, 0.2)
    assert len(val) == 2
    assert set(train) | set(val) == set(ids)
    assert split_episodes(ids, 0.2) == (train, val)
    assert split_episodes(['only'], 0.5) == (['only'], [])
    with pytest.raises(ConfigError, match=r'data\.datasets is empty'):
        _data(tiny_config([], tmp_path))
    with pytest.raises(PtrError, match='not a ptr dataset'):
        _data(tiny_config(tmp_path / 'nothing', tmp_path))
    make_synthetic_dataset(tmp_path / 'one', robot='other', episodes=1, length=5, state_dim=2)
    make_synthetic_dataset(tmp_path / 'two', robot='b', episodes=1, length=5)
    foreign = _data(tiny_config(tmp_path / 'two', tmp_path)).preprocessor
    with pytest.raises(PtrError, match=r"robots \['other'\] are not in the policy's layout"):
        _data(tiny_config(tmp_path / 'one', tmp_path), preprocessor=foreign)
