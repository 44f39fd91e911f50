"""Policy heads: shapes, masking, overfitting one batch, determinism, the uniform weighter."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch

from ptr_core import batch as K
from ptr_core.data import build_data
from ptr_core.errors import ConfigError
from ptr_core.policies import DiffusionPolicy, FlowPolicy, build_policy
from ptr_core.policies.policy import cosine_alphas_cumprod
from ptr_core.weighting import UniformWeighter, build_weighter, weighted_mean


def _setup(dataset: Path, tiny_config, *extra: str, n: int = 8):  # type: ignore[no-untyped-def]
    cfg = tiny_config(dataset, Path('/u'), *extra)
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    picks = torch.linspace(0, len(bundle.train) - 1, n).long().tolist()
    samples = [bundle.train[bundle.train.flat_index(i)] for i in picks]
    batch = {k: torch.stack([s[k] for s in samples]) for k in samples[0]}
    return cfg, bundle, batch


@pytest.mark.parametrize('head', ['diffusion', 'flow'])
def test_shapes_and_target_feature(head: str, image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(image_dataset, tiny_config, f'policy.head={head}')
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, bundle.preprocessor)
    assert isinstance(policy, DiffusionPolicy if head == 'diffusion' else FlowPolicy)
    out = policy.forward_train(batch)
    assert out.loss.shape == (8,)
    assert (out.loss > 0).all()
    assert out.h.shape == (8, policy.context_dim)
    assert out.e.shape == (8, 32)
    assert out.h.requires_grad
    assert out.e.requires_grad
    actions = policy.sample_actions(batch, steps=2)
    assert actions.shape == (8, 4, 3)
    # the gripper robot has 2 action dims: the padded third is exactly zero
    gripper = batch[K.ROBOT_ID] == bundle.preprocessor.layout.robot_index('gripper')
    assert gripper.any()
    assert actions[gripper][..., 2].abs().sum() == 0
    y = policy.encoder.target_feature(batch, 'future.')
    assert y.shape == (8, policy.encoder.target_dim) == (8, 16)  # trunk width, pre-projection
    # averaged over the views the robot has: the gripper's missing wrist camera does not count
    only_front = policy.encoder.pooled('front', batch[K.future_image_key('front')])
    torch.testing.assert_close(y[gripper], only_front[gripper])


def test_state_only_target_is_the_encoded_state(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(state_dataset, tiny_config)
    policy = build_policy(cfg.policy, bundle.preprocessor)
    y = policy.encoder.target_feature(batch, 'future.')
    torch.testing.assert_close(y, policy.encoder.state_mlp(batch[K.FUTURE_STATE]))
    assert policy.encoder.roles == ()


def test_loss_ignores_masked_entries(image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(image_dataset, tiny_config)
    policy = build_policy(cfg.policy, bundle.preprocessor)
    base = policy.per_sample_loss(batch)
    poked = dict(batch)
    poked[K.ACTION] = torch.where(batch[K.ACTION_MASK], batch[K.ACTION], torch.full_like(
        batch[K.ACTION], 100.0))
    torch.testing.assert_close(policy.per_sample_loss(poked), base)
    assert (~batch[K.ACTION_MASK]).any()  # the gripper's padded dim is masked


@pytest.mark.parametrize('head', ['diffusion', 'flow'])
def test_each_head_overfits_one_batch(head: str, state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(state_dataset, tiny_config, f'policy.head={head}')
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, bundle.preprocessor)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3, weight_decay=0.0)
    first = last = 0.0
    for i in range(150):
        loss = policy.per_sample_loss(batch).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        last = float(loss.detach())
        first = last if i == 0 else first
    assert last < first / 10, (first, last)


def test_fixed_seed_determinism(image_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(image_dataset, tiny_config)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        policy = build_policy(cfg.policy, bundle.preprocessor)
        loss = policy.per_sample_loss(batch)
        gen = torch.Generator().manual_seed(11)
        outs.append((loss, policy.sample_actions(batch, generator=gen)))
    assert torch.equal(outs[0][0], outs[1][0])
    assert torch.equal(outs[0][1], outs[1][1])
    torch.manual_seed(4)
    other = build_policy(cfg.policy, bundle.preprocessor)
    assert not torch.equal(other.per_sample_loss(batch), outs[0][0])


def test_ddim_and_schedule(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, _ = _setup(state_dataset, tiny_config, 'policy.train_timesteps=100')
    policy = build_policy(cfg.policy, bundle.preprocessor)
    assert isinstance(policy, DiffusionPolicy)
    assert policy.ddim_timesteps(4) == [99, 74, 50, 25]
    assert policy.ddim_timesteps(1) == [99]
    many = policy.ddim_timesteps(500)  # capped at K steps, strictly descending from K-1
    assert many[0] == 99
    assert len(many) >= 95
    assert all(a > b for a, b in itertools.pairwise(many))
    ab = cosine_alphas_cumprod(100)
    assert ab.shape == (100,)
    assert 0.99 < float(ab[0]) <= 1.0
    assert float(ab[-1]) < 1e-3
    assert bool((ab[1:] < ab[:-1]).all())


def test_uniform_weighter_equals_plain_mean(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, batch = _setup(state_dataset, tiny_config)
    policy = build_policy(cfg.policy, bundle.preprocessor)
    weighter = build_weighter('uniform', {})
    assert isinstance(weighter, UniformWeighter)
    out = policy.forward_train(batch)
    wout = weighter(batch, out, 0)
    torch.testing.assert_close(weighted_mean(out.loss, wout.weights), out.loss.mean(),
                               rtol=1e-6, atol=0)
    assert float(wout.aux_loss) == 0.0
    with pytest.raises(ConfigError, match="unknown weighter 'nope'"):
        build_weighter('nope', {})
    with pytest.raises(ConfigError, match='takes no options'):
        build_weighter('uniform', {'alpha': 1})


def test_configs_differ_only_in_head_share_weights(state_dataset: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    cfg, bundle, _ = _setup(state_dataset, tiny_config)
    diff = build_policy(cfg.policy, bundle.preprocessor)
    flow = build_policy(dataclasses.replace(cfg.policy, head='flow'), bundle.preprocessor)
    flow.load_state_dict(diff.state_dict())  # same names and shapes: strict load works


def test_every_registered_head_and_weighter_resolves() -> None:
    """One registry each: ``configuration.HEADS`` (policy.head is validated against it) and
    ``weighting.WEIGHTERS``; every entry names a class of the right kind."""
    from ptr_core.configuration import HEADS, PolicyConfig
    from ptr_core.errors import ConfigError
    from ptr_core.policies.policy import ActionPolicy, policy_class
    from ptr_core.weighting import WEIGHTERS, SampleWeighter, build_weighter

    for head in HEADS:
        cls = policy_class(head)
        assert issubclass(cls, ActionPolicy)
        assert cls.head == head
    with pytest.raises(ConfigError, match=r"policy\.head: 'unet' is invalid; expected diffusion"):
        PolicyConfig(head='unet')
    for name in WEIGHTERS:
        assert isinstance(build_weighter(name), SampleWeighter)
    assert 'trust' not in WEIGHTERS  # trust is the data's (data.trust), not a weighter
