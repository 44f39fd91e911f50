"""The ``ptr`` weighter with a tiny stand-in policy: step semantics, state, pool, diagnostics.

The stand-in has what the real policies expose to PTR: ``encoder.target_feature(batch,
'future.')``, the widths, and a ``forward_train`` returning ``PolicyOutput(loss, h, e)``.
"""

from __future__ import annotations

import logging
import math

import pytest
import torch
from torch import Tensor, nn

from ptr_core import batch as K
from ptr_core.errors import ConfigError, PtrError
from ptr_core.weighting import build_weighter
from ptr_core.weighting.base import PolicyOutput, weighted_mean
from ptr_core.weighting.ptr import PTRWeighter
from ptr_core.weighting.ptr.config import PAPER_DEFAULTS, PTRConfig
from ptr_core.weighting.ptr.controller import AdaptiveController
from ptr_core.weighting.ptr.diagnostics import BoundWarning
from ptr_core.weighting.ptr.queue import TargetQueue
from ptr_core.weighting.ptr.scorer import normalize

DS, DA, D = 4, 4, 16


class StandInEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.state_mlp = nn.Sequential(nn.Linear(DS, D), nn.Tanh(), nn.Linear(D, D))
        self.context_dim = D
        self.target_dim = D

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        out: Tensor = self.state_mlp(batch[K.OBS_STATE][:, -1])
        return out

    def target_feature(self, batch: dict[str, Tensor], prefix: str = 'future.') -> Tensor:
        state = batch[f'{prefix}state']
        out: Tensor = self.state_mlp(state[:, -1] if state.dim() == 3 else state)
        return out


class StandInPolicy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = StandInEncoder()
        self.act = nn.Sequential(nn.Linear(DA, D), nn.Tanh(), nn.Linear(D, D))
        self.head = nn.Linear(D, DA)
        self.action_summary_dim = D
        self.state_dim = DS
        self.chunk_length = 3  # L of make_batch's action chunks

    def forward_train(self, batch: dict[str, Tensor]) -> PolicyOutput:
        h = self.encoder(batch)
        e = self.act(batch[K.ACTION][:, 0])
        loss = ((self.head(h) - batch[K.ACTION][:, 0]) ** 2).mean(-1)
        return PolicyOutput(loss=loss, h=h, e=e)


def make_batch(n: int, g: torch.Generator, *, bad_share: float = 0.5,
               n_protos: int = 16, n_episodes: int = 16) -> dict[str, Tensor]:
    """States from a few prototypes; good episodes record the action that moved the state."""
    protos = torch.randn(n_protos, DS, generator=torch.Generator().manual_seed(123)) * 2
    state = protos[torch.randint(0, n_protos, (n,), generator=g)]
    state = state + 0.02 * torch.randn(n, DS, generator=g)
    true_action = torch.randn(n, DA, generator=g)
    episode = torch.randint(0, n_episodes, (n,), generator=g)
    bad = episode < int(n_episodes * bad_share)
    recorded = torch.where(bad[:, None], torch.randn(n, DA, generator=g), true_action)
    return {
        K.OBS_STATE: state[:, None].repeat(1, 2, 1),
        K.ACTION: recorded[:, None].repeat(1, 3, 1),
        K.FUTURE_STATE: state + 0.5 * true_action,
        K.FUTURE_VALID: torch.ones(n, dtype=torch.bool),
        K.EPISODE_ID: episode,
        K.FRAME_INDEX: torch.randint(0, 100, (n,), generator=g),
        K.ROBOT_ID: (episode % 2).long(),
        K.TASK_ID: torch.zeros(n, dtype=torch.long),
        K.DATASET_ID: torch.zeros(n, dtype=torch.long),
        K.SOURCE_ID: bad.long(),
    }


def make(options: dict[str, object], seed: int = 0) -> tuple[StandInPolicy, PTRWeighter]:
    torch.manual_seed(seed)
    policy = StandInPolicy()
    weighter = build_weighter('ptr', options)
    assert isinstance(weighter, PTRWeighter)
    weighter.bind(policy)
    weighter.set_group_names(robots=('arm_a', 'arm_b'), sources=('good', 'bad'))
    return policy, weighter


def step(policy: StandInPolicy, weighter: PTRWeighter, batch: dict[str, Tensor], i: int,
         opt: torch.optim.Optimizer | None = None) -> tuple[Tensor, dict[str, float]]:
    out = policy.forward_train(batch)
    wout = weighter(batch, out, i)
    loss = weighted_mean(out.loss, wout.weights) + wout.aux_loss
    if opt is not None:
        opt.zero_grad()
        loss.backward()
        opt.step()
    weighter.after_step(batch, out, i)
    return wout.weights, wout.metrics


def test_build_and_bind_read_the_policy_widths() -> None:
    policy, weighter = make({'warmup_steps': 0})
    assert weighter.scorer is not None
    assert weighter.queue is not None
    assert weighter.scorer.w_h.in_features == D
    assert weighter.queue.state.shape == (1024, DS)
    assert weighter.target_encoder is not policy.encoder
    assert all(not p.requires_grad for p in weighter.target_encoder.parameters())
    with pytest.raises(ConfigError, match='nope'):
        build_weighter('ptr', {'nope': 1})
    with pytest.raises(PtrError, match='bind'):
        PTRWeighter()(make_batch(4, torch.Generator()), policy.forward_train(
            make_batch(4, torch.Generator())), 0)


@pytest.mark.parametrize('mode', ['action', 'future'])
def test_alpha_zero_gives_the_uniform_loss_and_no_gradient(mode: str) -> None:
    policy, weighter = make({'alpha': 0.0, 'warmup_steps': 0, 'score_mode': mode})
    batch = make_batch(32, torch.Generator().manual_seed(0))
    out = policy.forward_train(batch)
    wout = weighter(batch, out, 5)
    assert torch.equal(wout.weights, torch.ones(32))
    assert torch.equal(weighted_mean(out.loss, wout.weights), out.loss.sum() / 32)
    assert wout.aux_loss.item() == 0.0
    assert not wout.aux_loss.requires_grad  # the scorer stays idle: nothing reaches the policy
    state = torch.get_rng_state()
    PTRWeighter(PTRConfig()).bind(policy)
    assert torch.equal(torch.get_rng_state(), state)  # binding does not consume the global RNG


@pytest.mark.parametrize('mode', ['action', 'future'])
def test_identical_samples_get_weight_exactly_one(mode: str) -> None:
    policy, weighter = make({'warmup_steps': 0, 'score_mode': mode, 'smoothing': 'none'})
    one = make_batch(1, torch.Generator().manual_seed(0))
    batch = {k: v.repeat(8, *([1] * (v.dim() - 1))) for k, v in one.items()}
    out = policy.forward_train(batch)
    wout = weighter(batch, out, 0)
    assert torch.equal(wout.weights, torch.ones(8))  # all T equal, centred to 0
    assert not wout.weights.requires_grad


def test_warmup_invalid_futures_bounds_and_detached_weights() -> None:
    policy, weighter = make({'warmup_steps': 3, 'w_min': 0.25, 'w_max': 4.0, 'beta': 0.1})
    g = torch.Generator().manual_seed(1)
    batch = make_batch(32, g)
    batch[K.FUTURE_VALID][:5] = False
    w, m = step(policy, weighter, batch, 0)
    assert torch.equal(w, torch.ones(32))
    assert m['warmup'] == 1.0
    assert m['valid_ratio'] == pytest.approx(27 / 32)
    h = policy.encoder(batch).detach().requires_grad_(True)
    out = policy.forward_train(batch)
    out = PolicyOutput(loss=out.loss, h=h, e=out.e)
    wout = weighter(batch, out, 3)
    assert not wout.weights.requires_grad
    assert torch.equal(wout.weights[:5], torch.ones(5))
    assert bool(((wout.weights >= 0.25) & (wout.weights <= 4.0)).all())
    assert wout.weights[5:].std() > 0
    wout.aux_loss.backward()
    assert h.grad is not None
    assert h.grad[:5].abs().sum() == 0
    assert h.grad[5:].abs().sum() > 0


def test_detach_keeps_scorer_gradients_off_the_backbone() -> None:
    for detach in (False, True):
        policy, weighter = make({'warmup_steps': 0, 'detach': detach})
        batch = make_batch(16, torch.Generator().manual_seed(2))
        out = policy.forward_train(batch)
        weighter(batch, out, 0).aux_loss.backward()
        grad = policy.act[0].weight.grad
        assert (grad is None) == detach


def test_action_mode_score_equals_the_explicit_posterior() -> None:
    policy, weighter = make({'warmup_steps': 0, 'score_mode': 'action'})
    batch = make_batch(12, torch.Generator().manual_seed(3))
    out = policy.forward_train(batch)
    scored = weighter.score(batch, out, step=0)
    assert weighter.scorer is not None
    assert weighter.target_encoder is not None
    g = weighter.target_encoder
    y = normalize(g.target_feature(batch, 'future.') - g.target_feature(batch, 'obs.'))
    tau = float(weighter.controller.tau)
    expected = []
    for i in range(12):
        u = weighter.scorer(out.h[i].expand(12, -1), out.e)  # f(h_i, e_j) for every j
        d = (torch.cosine_similarity(u, y[i].expand(12, -1), dim=1) / tau).clamp(-20, 20)
        expected.append(torch.log_softmax(d, 0)[i] + math.log(12))
    torch.testing.assert_close(scored.score, torch.stack(expected).detach(), rtol=1e-4,
                               atol=1e-4)


def test_future_mode_pool_is_batch_plus_queue_and_masks_same_episode() -> None:
    policy, weighter = make({'warmup_steps': 0, 'score_mode': 'future', 'queue_size': 64,
                             'queue_draws': 8, 'smoothing': 'none'})
    g = torch.Generator().manual_seed(4)
    _, m = step(policy, weighter, make_batch(16, g), 0)
    assert m['candidates'] == 16  # own + 15 in-batch, empty queue
    assert weighter.queue is not None
    assert weighter.queue.filled() == 16
    _, m = step(policy, weighter, make_batch(16, g), 1)
    assert m['candidates'] == 16 + 8
    # same-episode masking removes the query's own episode near frames from the pool
    _, weighter = make({'warmup_steps': 0, 'score_mode': 'future', 'queue_draws': 0,
                        'mask_same_episode': True, 'mask_window': 5, 'smoothing': 'none'})
    batch = make_batch(8, g)
    batch[K.EPISODE_ID] = torch.tensor([0, 0, 0, 1, 1, 2, 3, 4])
    batch[K.FRAME_INDEX] = torch.tensor([0, 3, 50, 0, 40, 0, 0, 0])
    scored = weighter.score(batch, policy.forward_train(batch), step=0)
    assert scored.post.n_candidates.tolist() == [7, 7, 8, 8, 8, 8, 8, 8]


def test_queue_fifo_hard_negatives_and_window() -> None:
    q = TargetQueue(4, 2, 1)
    for i in range(6):  # 6 pushes into 4 slots: 2..5 remain
        q.push(torch.full((1, 2), float(i)), torch.full((1, 1), float(i)),
               torch.tensor([i % 2]), torch.tensor([i]), torch.tensor([i]), torch.tensor([0]))
    assert q.filled() == 4
    assert sorted(q.target[:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    state = torch.tensor([[4.2]])
    ids = {'robot': torch.tensor([7]), 'task': torch.tensor([2]), 'episode': torch.tensor([9]),
           'frame': torch.tensor([0])}
    rand = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    drawn = q.draw(n_draws=2, r_hard=0.5, hard='nearest_state', state=state, window=None,
                   rand=rand, **ids)
    assert drawn is not None
    assert drawn.n_hard == 1
    assert q.state[drawn.index[0, 0], 0].item() == 4.0  # nearest stored state
    assert drawn.index[0, 1].item() != drawn.index[0, 0].item()
    drawn = q.draw(n_draws=2, r_hard=0.5, hard='task_robot', state=state, window=None,
                   rand=rand, **ids)
    assert drawn is not None
    assert q.task[drawn.index[0, 0]].item() == 2  # same task beats a nearer state
    ids['episode'] = torch.tensor([4])
    drawn = q.draw(n_draws=3, r_hard=0.5, hard='nearest_state', state=state, window=0,
                   rand=rand, **ids)
    assert drawn is not None
    assert bool(drawn.usable.all())
    assert sorted(q.episode[drawn.index[0]].tolist()) == [2, 3, 5]  # episode 4 is masked


def test_controller_rules_and_clips() -> None:
    cfg = PTRConfig(tau=0.12, beta=1.5)
    c = AdaptiveController(cfg)
    c.observe(0.0, 0.0, 0.0, 1.0)
    c.adapt()
    assert float(c.tau) == pytest.approx(0.12 * 1.01)
    assert float(c.beta) == pytest.approx(
        1.5 * 1.002)
    assert float(c.r_hard) == 0.0
    c = AdaptiveController(cfg)
    c.observe(0.9, 0.5, 2.0, 1.0)
    c.adapt()
    assert float(c.tau) == pytest.approx(0.12 * 0.995)
    assert float(c.beta) == pytest.approx(1.5 * 0.999)
    assert float(c.r_hard) == pytest.approx(0.5)
    c.observe(0.3, 0.0, 0.0, 1.0)  # EMA with decay 0.98
    assert float(c.ema_acc) == pytest.approx(0.98 * 0.9 + 0.02 * 0.3)
    for _ in range(2000):
        c.observe(0.0, 0.0, 0.0, 1.0)
        c.adapt()
    assert float(c.tau) == pytest.approx(0.20)
    assert float(c.beta) == pytest.approx(3.0)


def test_episode_smoothing_is_an_ema_of_each_episodes_scores() -> None:
    policy, weighter = make({'warmup_steps': 0, 'smoothing': 'episode', 'smoothing_decay': 0.5,
                             'center': False})
    g = torch.Generator().manual_seed(5)
    batch = make_batch(8, g)
    batch[K.EPISODE_ID] = torch.tensor([3, 3, 5, 5, 5, 7, 7, 7])
    t1 = weighter.score(batch, policy.forward_train(batch), step=0).score
    step(policy, weighter, batch, 0)
    assert weighter.episode_seen[[3, 5, 7]].all()
    assert not weighter.episode_seen[4]
    assert weighter.episode_score[3].item() == pytest.approx(t1[:2].mean().item(), abs=1e-5)
    t2 = weighter.score(batch, policy.forward_train(batch), step=1).score
    w, _ = step(policy, weighter, batch, 1)
    s3 = 0.5 * t1[:2].mean() + 0.5 * t2[:2].mean()
    assert weighter.episode_score[3].item() == pytest.approx(s3.item(), abs=1e-5)
    beta = float(weighter.controller.beta)
    expected = min(max(math.exp(s3.item() / beta), 0.05), 4.0)
    assert w[0].item() == pytest.approx(expected, rel=1e-4)
    assert w[0] == w[1]


def test_target_encoder_ema_and_frozen() -> None:
    for frozen in (False, True):
        policy, weighter = make({'warmup_steps': 0, 'frozen_target': frozen,
                                 'ema_decay': 0.9})
        assert weighter.target_encoder is not None
        before = weighter.target_encoder.state_mlp[0].weight.clone()
        opt = torch.optim.SGD(policy.parameters(), lr=0.5)
        step(policy, weighter, make_batch(16, torch.Generator().manual_seed(6)), 0, opt)
        online = policy.encoder.state_mlp[0].weight.detach()
        after = weighter.target_encoder.state_mlp[0].weight
        expected = before if frozen else 0.9 * before + 0.1 * online
        torch.testing.assert_close(after, expected)
        assert not torch.equal(online, before)


def test_state_dict_round_trip_restores_queue_controller_and_episode_table() -> None:
    opts = {'warmup_steps': 2, 'score_mode': 'future', 'queue_size': 64, 'controller_every': 2,
            'smoothing': 'episode'}
    policy, weighter = make(opts)
    opt = torch.optim.Adam([*policy.parameters(), *weighter.parameters()], lr=1e-2)
    g = torch.Generator().manual_seed(7)
    for i in range(6):
        step(policy, weighter, make_batch(16, g), i, opt)
    state = {k: v.clone() for k, v in weighter.state_dict().items()}
    _, fresh = make(opts, seed=99)
    fresh.bind(policy)
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    batch = make_batch(16, g)
    out = policy.forward_train(batch)
    a, b = weighter(batch, out, 6), fresh(batch, out, 6)
    assert torch.equal(a.weights, b.weights)
    assert a.metrics == b.metrics


def test_diagnostics_keys_groups_and_clip_shares() -> None:
    policy, weighter = make({**PAPER_DEFAULTS, 'warmup_steps': 0, 'beta': 0.01,
                             'controller': False})
    batch = make_batch(32, torch.Generator().manual_seed(8))
    _, m = step(policy, weighter, batch, 0)
    keys = {'nce_acc', 'nce_margin', 'T_mean', 'T_min', 'T_max', 'T_std', 'w_mean', 'w_min',
            'w_max', 'w_std', 'w_at_min_share', 'w_at_max_share', 'ess', 'tau', 'beta',
            'r_hard', 'valid_ratio', 'w_mean/robot/arm_a', 'w_mean/robot/arm_b',
            'w_mean/dataset/0', 'w_mean/source/good', 'w_mean/source/bad'}
    assert keys <= set(m)
    assert all(isinstance(v, float) for v in m.values())
    assert m['w_at_min_share'] + m['w_at_max_share'] > 0.9  # β = 0.01 saturates every weight
    w = torch.tensor([m['w_mean/source/good'], m['w_mean/source/bad']])
    assert m['ess'] <= 32
    assert m['w_min'] >= 0.25
    assert m['w_max'] <= 4.0
    assert bool((w >= 0.25).all())


def test_bound_warning_fires_over_90_percent_and_is_throttled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    warn = BoundWarning(0.9, every=100)
    with caplog.at_level(logging.WARNING, logger='ptr_core.weighting.ptr.diagnostics'):
        assert not warn({'w_at_max_share': 0.85, 'w_at_min_share': 0.1}, 0)
        assert caplog.text == ''
        assert warn({'w_at_max_share': 0.95, 'w_at_min_share': 0.0}, 1)
        assert 'w_max clip bound' in caplog.text
        assert '95%' in caplog.text
        caplog.clear()
        assert warn({'w_at_max_share': 0.0, 'w_at_min_share': 0.97}, 50)
        assert caplog.text == ''  # throttled
        assert warn({'w_at_max_share': 0.0, 'w_at_min_share': 0.97}, 101)
        assert 'w_min clip bound' in caplog.text


def test_r_hard_min_floors_the_hard_share() -> None:
    c = AdaptiveController(PTRConfig(r_hard_min=0.3))
    assert float(c.r_hard) == pytest.approx(0.3)
    c.observe(0.0, 0.0, 0.0, 1.0)
    c.adapt()
    assert float(c.r_hard) == pytest.approx(0.3)
    c = AdaptiveController(PTRConfig(r_hard_min=0.3, hard_negatives='none'))
    assert float(c.r_hard) == 0.0


def test_residual_target_trains_a_context_predictor_and_scores_what_it_misses() -> None:
    policy, weighter = make({'warmup_steps': 0, 'target': 'residual'})
    assert weighter.predictor is not None
    batch = make_batch(16, torch.Generator().manual_seed(9))
    out = policy.forward_train(batch)
    scored = weighter.score(batch, out, step=0)
    assert weighter.target_encoder is not None
    y = normalize(weighter.target_encoder.target_feature(batch, 'future.'))
    guess = weighter.predictor(out.h.detach())
    torch.testing.assert_close(scored.target, normalize(y - guess), rtol=1e-5, atol=1e-6)
    assert scored.pred is not None
    torch.testing.assert_close(scored.pred, ((guess - y) ** 2).sum(-1))
    weighter(batch, out, 0).aux_loss.backward()
    first = weighter.predictor[1]
    assert isinstance(first, nn.Linear)
    assert first.weight.grad is not None
    assert first.weight.grad.abs().sum() > 0
    assert 'predictor.1.weight' in weighter.state_dict()
