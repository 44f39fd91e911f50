"""The one preprocessing path: normalization, and loader == node tensors element for element."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bag_tools.dataset import Dataset, FeatureStats
from ptr_core import batch as K
from ptr_core.configuration import TrainConfig
from ptr_core.data import DataBundle, build_data
from ptr_core.errors import PtrError
from ptr_core.preprocess import (
    Normalizer,
    Preprocessor,
    finish_images,
    merge_stats,
    observation_batch,
)


def _stats(lo: float, hi: float, dim: int = 2) -> FeatureStats:
    return FeatureStats(count=10, min=[lo - 1] * dim, max=[hi + 1] * dim,
                        mean=[(lo + hi) / 2] * dim, std=[2.0] * dim, p01=[lo] * dim,
                        p99=[hi] * dim)


def _data(cfg: TrainConfig) -> DataBundle:
    return build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)


def _entry(dim: int) -> dict:
    return {'state_names': ['s'] * dim, 'action_names': ['a'] * dim}


@pytest.mark.parametrize(('mode', 'lo', 'hi'), [('minmax_p', 0.0, 4.0), ('minmax', -1.0, 5.0)])
def test_minmax_maps_range_to_unit_interval(mode: str, lo: float, hi: float) -> None:
    norm = Normalizer.from_stats(mode, {'r': {'state': _stats(0, 4), 'action': _stats(0, 4)}},
                                 {'r': _entry(2)})  # type: ignore[dict-item]
    out = norm.normalize_state([[lo, hi]], 'r')
    np.testing.assert_allclose(out, [[-1.0, 1.0]], atol=1e-6)
    back = norm.unnormalize_action(norm.normalize_action([[0.3, 3.7]], 'r'), 'r')
    np.testing.assert_allclose(back, [[0.3, 3.7]], atol=1e-6)


def test_meanstd_and_constant_dimension() -> None:
    stats = _stats(2.0, 2.0)  # p01 == p99: a joint that never moved
    norm = Normalizer.from_stats('minmax_p', {'r': {'state': stats}}, {'r': _entry(2)})  # type: ignore[dict-item]
    np.testing.assert_allclose(norm.normalize_state([[2.5, 2.0]], 'r'), [[0.5, 0.0]])
    ms = Normalizer.from_stats('meanstd', {'r': {'state': _stats(0, 4)}}, {'r': _entry(2)})  # type: ignore[dict-item]
    np.testing.assert_allclose(ms.normalize_state([[4.0, 0.0]], 'r'), [[1.0, -1.0]])
    again = Normalizer.from_json(ms.to_json())
    np.testing.assert_array_equal(again.normalize_state([[4.0, 1.0]], 'r'),
                                  ms.normalize_state([[4.0, 1.0]], 'r'))
    with pytest.raises(PtrError, match="robot 'r': state has 3 values, expected 2"):
        ms.normalize_state([[1.0, 2.0, 3.0]], 'r')


def test_merge_stats_pools_mean_and_range() -> None:
    a = FeatureStats(count=2, min=[0.0], max=[2.0], mean=[1.0], std=[1.0], p01=[0.0], p99=[2.0])
    b = FeatureStats(count=2, min=[2.0], max=[6.0], mean=[4.0], std=[2.0], p01=[2.0], p99=[6.0])
    m = merge_stats([a, b])
    assert m['count'] == 4
    assert m['min'] == [0.0]
    assert m['max'] == [6.0]
    assert m['mean'] == [2.5]
    # pooled variance: mean of (var + (mean - pooled)^2) = (1 + 2.25 + 4 + 2.25) / 2
    assert m['std'][0] == pytest.approx(np.sqrt(4.75))


def test_loader_and_node_give_identical_tensors(image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg = tiny_config(image_dataset, Path('/unused'))
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    pre = bundle.preprocessor
    ds = Dataset.open(image_dataset)
    for d, w in [(0, 0), (0, 5), (0, len(bundle.train.windows[0]) - 1), (0, 13)]:
        sample = bundle.train[(d, w, 0)]
        ref_i, t = (int(v) for v in bundle.train.windows[d][w])
        ref = bundle.train.refs[ref_i]
        ep = ds.episode(ref.episode.id)
        to = pre.obs_horizon
        lo = max(0, t - to + 1)
        # what the policy node holds: the raw frames of the last To steps (fewer at the start)
        state = np.array(ep.state[lo: t + 1])
        images = {r: np.array(ep.images[r][lo: t + 1]) for r in ep.images}
        node = observation_batch(state, images, ep.robot, pre)
        for key, value in node.items():
            assert torch.equal(value[0], sample[key]), key
    assert sample[K.OBS_STATE].shape == (2, 3)


def test_missing_roles_are_zero_and_masked(image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    bundle = _data(tiny_config(image_dataset, Path('/unused')))
    pre = bundle.preprocessor
    assert pre.layout.camera_roles == ('front', 'wrist')
    obs = observation_batch(np.zeros((1, 2)), {'front': np.full((1, 16, 16, 3), 255, np.uint8)},
                            'gripper', pre)
    assert obs[K.OBS_CAMERA_MASK].tolist() == [[True, False]]
    assert obs[K.obs_image_key('wrist')].abs().sum() == 0
    assert obs[K.obs_image_key('front')].shape == (1, 2, 3, 16, 16)  # history padded to To
    assert obs[K.STATE_MASK].tolist() == [[True, True, False]]
    with pytest.raises(PtrError, match="no frames for camera role 'wrist'"):
        observation_batch(np.zeros((2, 3)), {'front': np.zeros((2, 16, 16, 3), np.uint8)},
                          'arm', pre)
    with pytest.raises(PtrError, match='unknown robot'):
        observation_batch(np.zeros((2, 3)), {}, 'ghost', pre)


def test_other_image_sizes_are_resized_and_json_roundtrip(
    image_dataset: Path, tiny_config  # type: ignore[no-untyped-def]
) -> None:
    pre = _data(tiny_config(image_dataset, Path('/unused'))).preprocessor
    big = np.zeros((2, 64, 48, 3), np.uint8)
    big[:, :32] = 200
    obs = observation_batch(np.zeros((2, 3)), {'front': big, 'wrist': big}, 'arm', pre)
    img = obs[K.obs_image_key('front')]
    assert img.shape == (1, 2, 3, 16, 16)
    assert img[0, 0, 0, :8].mean() == pytest.approx(200 / 255, abs=1e-6)
    again = Preprocessor.from_json(pre.to_json())
    obs2 = observation_batch(np.zeros((2, 3)), {'front': big, 'wrist': big}, 'arm', again)
    for k in obs:
        assert torch.equal(obs[k], obs2[k])


def test_deferred_uint8_images_finish_to_the_same_tensors(image_dataset: Path,
                                                          tiny_config) -> None:  # type: ignore[no-untyped-def]
    """The trainer's loader ships uint8 frames; finish_images makes them what the node gets."""
    bundle = _data(tiny_config(image_dataset, Path('/u'), 'data.image_shift=2'))
    plain = bundle.train[(0, 7, 5)]
    bundle.train.defer_uint8 = True
    deferred = bundle.train[(0, 7, 5)]
    key = K.obs_image_key('wrist')
    assert deferred[key].dtype == torch.uint8
    assert plain[key].dtype == torch.float32
    done = finish_images(deferred)
    assert done.keys() == plain.keys()
    for k in plain:
        assert torch.equal(done[k], plain[k]), k


class _ImageMsg:
    """The fields of ``sensor_msgs/Image`` that ``bag_tools.observation.decode_image`` reads."""

    def __init__(self, frame: np.ndarray, encoding: str) -> None:
        self.height, self.width = frame.shape[:2]
        self.encoding = encoding
        self.is_bigendian = 0
        self.step = frame.shape[1] * frame.itemsize * (frame.shape[2] if frame.ndim == 3 else 1)
        self.data = frame.tobytes()


@pytest.mark.parametrize('depth', [False, True])
def test_one_resize_rule_for_ingest_and_serving(depth: bool) -> None:
    """A frame at another size than the profile's: ingest (decode at the profile size, then the
    loader's tensors) and serving (the raw frame through the preprocessor) give equal arrays."""
    from bag_tools.observation import decode_image
    from ptr_core.preprocess import image_to_tensor

    rng = np.random.default_rng(3)
    size = (24, 32)
    if depth:  # sharp edges: nearest keeps them, area averaging would blend them
        raw = np.where(rng.random((60, 70)) < 0.5, 500, 3000).astype(np.uint16)
        msg = _ImageMsg(raw, '16UC1')
    else:
        raw = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
        msg = _ImageMsg(raw, 'rgb8')
    ingested = decode_image(msg, size=size, depth=depth)  # what the dataset stores
    assert ingested.shape == (*size, 1 if depth else 3)
    trained = image_to_tensor(ingested[None], size, depth_max=4000.0)
    served = image_to_tensor((raw[..., None] if depth else raw)[None], size, depth_max=4000.0)
    assert torch.equal(trained, served)
    if depth:  # no value in between the two depths was invented
        assert set(np.unique(served.numpy() * 4000.0).round().astype(int)) <= {500, 3000}
