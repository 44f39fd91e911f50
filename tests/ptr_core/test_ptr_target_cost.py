"""The online weighter's target pass (``weighting/ptr/target.py``): full size by default (the
encoder's own two passes, bit for bit), frames box-filtered down to ``target_size`` on request,
state-only runs untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_ptr_weighter import StandInPolicy, make_batch
from torch import Tensor, nn

from ptr_core import batch as K
from ptr_core.configuration import DataConfig, DatasetSpec, EncoderConfig, PolicyConfig
from ptr_core.data import MixtureSampler, build_data, make_loader
from ptr_core.errors import ConfigError
from ptr_core.policies.encoder import ObservationEncoder
from ptr_core.policies.policy import build_policy
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.weighting.ptr import PTRWeighter
from ptr_core.weighting.ptr.config import PTRConfig
from ptr_core.weighting.ptr.target import pool_factor, target_pass

ROLES = ('front', 'wrist')


def _encoder() -> ObservationEncoder:
    torch.manual_seed(0)
    cfg = EncoderConfig(channels=(8, 16), groups=4, context_dim=32, state_hidden=16)
    enc = ObservationEncoder(cfg, roles=ROLES, channels=dict.fromkeys(ROLES, 3), state_dim=5,
                             n_robots=2, obs_horizon=2)
    return enc.eval()


def _image_batch(n: int = 6, side: int = 32) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(1)
    batch = {
        K.OBS_STATE: torch.randn(n, 2, 5, generator=g),
        K.FUTURE_STATE: torch.randn(n, 5, generator=g),
        # the second robot has no wrist camera: the mask must follow both halves of the call
        K.OBS_CAMERA_MASK: torch.tensor([[True, i % 2 == 0] for i in range(n)]),
    }
    for role in ROLES:
        batch[K.obs_image_key(role)] = torch.rand(n, 2, 3, side, side, generator=g)
        batch[f'{K.FUTURE_IMAGE_PREFIX}{role}'] = torch.rand(n, 3, side, side, generator=g)
    return batch


def _pooled_by_hand(frames: Tensor, k: int) -> Tensor:
    n, c, h, w = frames.shape
    return frames.reshape(n, c, h // k, k, w // k, k).mean(dim=(3, 5))


@torch.no_grad()
def test_full_size_is_the_encoders_own_two_passes_bit_for_bit() -> None:
    enc, batch = _encoder(), _image_batch()
    got = target_pass(enc, batch, target='delta', size=PTRConfig().target_size)
    old = enc.target_feature(batch, 'future.') - enc.target_feature(batch, 'obs.')
    assert got.shape == (6, 16)
    assert torch.equal(got, old)
    future = target_pass(enc, batch, target='future', size=0)
    assert torch.equal(future, enc.target_feature(batch, 'future.'))


@torch.no_grad()
def test_pooled_target_is_the_encoder_on_pooled_frames_of_future_and_current() -> None:
    enc, batch = _encoder(), _image_batch()
    pooled = dict(batch)
    for role in ROLES:
        fut = f'{K.FUTURE_IMAGE_PREFIX}{role}'
        pooled[fut] = _pooled_by_hand(batch[fut], 2)
        pooled[K.obs_image_key(role)] = _pooled_by_hand(batch[K.obs_image_key(role)][:, -1], 2)
    want = enc.target_feature(pooled, 'future.') - enc.target_feature(pooled, 'obs.')
    got = target_pass(enc, batch, target='delta', size=16)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    full = target_pass(enc, batch, target='delta', size=0)
    assert not torch.allclose(got, full, rtol=1e-3, atol=1e-4)  # the option does act


@torch.no_grad()
def test_the_trunk_reads_future_and_current_frames_pooled() -> None:
    enc, batch = _encoder(), _image_batch(n=6, side=32)
    seen: list[tuple[int, ...]] = []

    def hook(_m: nn.Module, args: tuple[Tensor, ...]) -> None:
        seen.append(tuple(args[0].shape))

    handles = [t.register_forward_pre_hook(hook) for t in enc.trunks.values()]
    target_pass(enc, batch, target='delta', size=16)
    for h in handles:
        h.remove()
    assert seen == [(6, 3, 16, 16)] * 2 * len(ROLES)  # future, then current frames, 2x pooled


def test_the_factor_keeps_the_shorter_side_at_least_target_size() -> None:
    assert PTRConfig().target_size == 0  # full size unless asked: 32 px costs ranking
    got = {side: pool_factor(side, side, 32) for side in (16, 32, 63, 64, 84, 96, 224)}
    assert got == {16: 1, 32: 1, 63: 1, 64: 2, 84: 2, 96: 3, 224: 7}
    assert pool_factor(480, 640, 32) == 15  # the shorter side decides: 32 x 42
    assert pool_factor(96, 96, 0) == 1  # 0: full size


def test_target_size_is_validated_with_a_one_line_error_naming_the_option() -> None:
    with pytest.raises(ConfigError, match='weighter option target_size: must be >= 0, got -1'):
        PTRConfig(target_size=-1)
    with pytest.raises(ConfigError, match='target_size'):
        PTRConfig.from_options({'target_size': 'half'})


def _state_weights(size: int, steps: int = 4) -> list[Tensor]:
    torch.manual_seed(0)
    policy = StandInPolicy()
    w = PTRWeighter(PTRConfig(warmup_steps=0, seed=3, target_size=size))
    w.bind(policy)
    opt = torch.optim.SGD([*policy.parameters(), *w.parameters()], lr=0.05)
    g = torch.Generator().manual_seed(7)
    out_w = []
    for step in range(steps):
        batch = make_batch(32, g)
        out = policy.forward_train(batch)
        wout = w(batch, out, step)
        out_w.append(wout.weights)
        opt.zero_grad()
        ((out.loss * wout.weights).mean() + wout.aux_loss).backward()
        opt.step()
        w.after_step(batch, out, step)
    return out_w


def test_state_only_weights_are_bit_identical_whatever_the_target_size() -> None:
    full, pooled = _state_weights(0), _state_weights(32)
    assert all(torch.equal(a, b) for a, b in zip(full, pooled, strict=True))
    assert not all(torch.equal(w, torch.ones_like(w)) for w in full)  # weights did move
    enc = StandInPolicy().encoder
    batch = make_batch(8, torch.Generator().manual_seed(0))
    old = enc.target_feature(batch, 'future.') - enc.target_feature(batch, 'obs.')
    assert torch.equal(target_pass(enc, batch, target='delta', size=32), old)


def test_image_policy_step_with_the_default_weighter(tmp_path: Path) -> None:
    root = tmp_path / 'data'
    make_synthetic_dataset(root, episodes=2, length=24, cameras=ROLES, image_size=(32, 32),
                           state_dim=4, sources=('a',))
    data = DataConfig(datasets=(DatasetSpec(str(root)),), obs_horizon=2, val_fraction=0.0)
    cfg = PolicyConfig(head='flow', chunk_length=4, unet_dims=(16, 32), time_embed_dim=16,
                       encoder=EncoderConfig(channels=(8, 16), groups=4, context_dim=32,
                                             state_hidden=16))
    bundle = build_data(data, chunk_length=cfg.chunk_length, seed=0)
    sampler = MixtureSampler(bundle.train.sizes, bundle.weights, batch_size=8, seed=0)
    batch = next(iter(make_loader(bundle.train, sampler, batch_size=8, config=data,
                                  device=torch.device('cpu'))))
    torch.manual_seed(0)
    policy = build_policy(cfg, bundle.preprocessor)
    w = PTRWeighter(PTRConfig(warmup_steps=0))
    w.bind(policy)
    out = policy.forward_train(batch)
    wout = w(batch, out, 0)
    assert wout.weights.shape == (8,)
    assert bool(torch.isfinite(wout.weights).all())
    assert bool(torch.isfinite(wout.aux_loss))
    with torch.no_grad():
        y = w._target(batch)
    assert y.shape == (8, 16)
    assert float(y.abs().sum()) > 0
