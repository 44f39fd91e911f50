"""Known answers and the guarantees of PTR_SPEC.md for the pure formulas of the PTR weighter."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from ptr_core.errors import ConfigError
from ptr_core.weighting.base import weighted_mean
from ptr_core.weighting.ptr.config import PAPER_DEFAULTS, PTRConfig
from ptr_core.weighting.ptr.scorer import (
    TransitionScorer,
    action_logits,
    future_logits,
    kl_to_data,
    normalize,
    posterior,
    ptr_score,
    ptr_weight,
    rank_loss,
)

INF = math.inf


def test_known_answer_posterior_score_weight_and_loss() -> None:
    # Two queries: own logit 1 vs negatives [0, 0, masked]; own logit 0 vs [2, masked, masked].
    pos = torch.tensor([1.0, 0.0], dtype=torch.float64)
    negs = torch.tensor([[0.0, 0.0, -INF], [2.0, -INF, -INF]], dtype=torch.float64)
    post = posterior(pos, negs)
    p0 = math.e / (math.e + 2.0)
    p1 = 1.0 / (1.0 + math.e**2)
    assert post.n_candidates.tolist() == [3, 2]
    torch.testing.assert_close(post.log_p, torch.tensor([math.log(p0), math.log(p1)],
                                                        dtype=torch.float64))
    assert post.correct.tolist() == [True, False]
    torch.testing.assert_close(post.margin, torch.tensor([1.0, -2.0], dtype=torch.float64))

    t = ptr_score(post.log_p, post.n_candidates)
    t_expected = [math.log(p0) + math.log(3), math.log(p1) + math.log(2)]
    torch.testing.assert_close(t, torch.tensor(t_expected, dtype=torch.float64))

    beta, w_min, w_max, alpha = 0.5, 0.25, 4.0, 0.8
    w = ptr_weight(t, beta, w_min, w_max, alpha)
    raw = [min(max(math.exp(v / beta), w_min), w_max) for v in t_expected]
    w_expected = [1 + alpha * (r - 1) for r in raw]
    torch.testing.assert_close(w, torch.tensor(w_expected, dtype=torch.float64))
    # sample 0: exp(2·0.349) = 2.01 (inside the clip); sample 1: exp(2·(−1.43)) clipped at 0.25
    assert 1.0 < raw[0] < 4.0
    assert raw[1] == 0.25

    losses = torch.tensor([0.3, 1.7], dtype=torch.float64)
    expected = (w_expected[0] * 0.3 + w_expected[1] * 1.7) / sum(w_expected)
    assert weighted_mean(losses, w).item() == pytest.approx(expected, rel=1e-12)


def test_rank_loss_is_minus_log_sigmoid_of_the_gap() -> None:
    d_pos = torch.tensor([2.0, 0.0])
    d_neg = torch.tensor([0.0, 0.0])
    expected = [-math.log(1 / (1 + math.exp(-2.0))), math.log(2.0)]
    torch.testing.assert_close(rank_loss(d_pos, d_neg), torch.tensor(expected))


def test_logits_are_cosine_over_tau_clamped() -> None:
    u = torch.tensor([[2.0, 0.0], [0.0, -3.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    d = future_logits(u, y, 0.1, 20.0)
    torch.testing.assert_close(d, torch.tensor([[10.0, 0.0], [0.0, -10.0]]))
    d = future_logits(u, y, 0.01, 20.0)  # ±100 clamps to ±20
    torch.testing.assert_close(d, torch.tensor([[20.0, 0.0], [0.0, -20.0]]))


def test_action_logits_matrix_form_equals_the_explicit_pairs() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=g), torch.randn(6, 7, generator=g)
    y = normalize(torch.randn(5, 7, generator=g))
    d = action_logits(a, b, y, 0.12, 20.0)
    explicit = torch.empty(5, 6)
    for i in range(5):
        for j in range(6):
            explicit[i, j] = torch.cosine_similarity(a[i] + b[j], y[i], dim=0) / 0.12
    torch.testing.assert_close(d, explicit.clamp(-20, 20), rtol=1e-5, atol=1e-5)


def test_scorer_is_context_plus_action_mlp() -> None:
    torch.manual_seed(0)
    scorer = TransitionScorer(4, 3, 6, hidden=8)
    h, e = torch.randn(2, 4), torch.randn(2, 3)
    torch.testing.assert_close(scorer(h, e), scorer.w_h(scorer.norm(h)) + scorer.mlp_a(e))
    assert scorer.w_h.bias is None


def test_alpha_zero_is_exactly_uniform() -> None:
    t = torch.randn(64) * 5
    losses = torch.rand(64)
    w = ptr_weight(t, 0.5, 0.05, 4.0, 0.0)
    assert torch.equal(w, torch.ones(64))
    assert torch.equal(weighted_mean(losses, w), losses.sum() / 64)


def test_equal_scores_are_uniform() -> None:
    losses = torch.rand(32, dtype=torch.float64)
    w = ptr_weight(torch.full((32,), 0.7, dtype=torch.float64), 1.5, 0.25, 4.0, 1.0)
    assert torch.unique(w).numel() == 1
    torch.testing.assert_close(weighted_mean(losses, w), losses.mean(), rtol=1e-14, atol=0)


@pytest.mark.parametrize(('w_min', 'w_max'), [(0.25, 4.0), (0.05, 4.0)])
def test_weights_stay_in_bounds_and_kl_is_bounded(w_min: float, w_max: float) -> None:
    g = torch.Generator().manual_seed(1)
    extreme = torch.tensor([-1e9, 1e9, 0.0, -INF, INF])
    for trial in range(200):
        t = torch.randn(50, generator=g) * (10 ** (trial % 4))
        if trial == 0:
            t = torch.cat([t, extreme])
        w = ptr_weight(t, 0.5 + trial % 3, w_min, w_max, 1.0)
        assert bool((w >= w_min).all())
        assert bool((w <= w_max).all())
        p = torch.rand(len(w), generator=g) + 1e-3
        assert kl_to_data(w, p).item() <= math.log(w_max / w_min) + 1e-9
        # any source's share changes by at most w_max / w_min
        source = torch.rand(len(w), generator=g) < 0.3
        if source.any() and (~source).any():
            share_p = (p * source).sum() / p.sum()
            share_q = (p * w * source).sum() / (p * w).sum()
            ratio = (share_q / share_p).item()
            assert w_min / w_max - 1e-9 <= ratio <= w_max / w_min + 1e-9
    # the worst two-point mix (share ε at w_max, the rest at w_min) stays under the bound
    worst = 0.0
    for k in range(1, 200):
        eps = k / 200
        w = torch.tensor([w_max, w_min], dtype=torch.float64)
        worst = max(worst, kl_to_data(w, torch.tensor([eps, 1 - eps])).item())
    assert 0.3 * math.log(w_max / w_min) < worst <= math.log(w_max / w_min)


def test_scaling_weights_leaves_the_loss_and_zero_weight_has_no_gradient() -> None:
    losses = torch.rand(8, dtype=torch.float64, requires_grad=True)
    w = torch.rand(8, dtype=torch.float64) + 0.1
    base = weighted_mean(losses, w)
    for c in (1e-3, 7.0, 1e6):
        torch.testing.assert_close(weighted_mean(losses, w * c), base, rtol=1e-13, atol=0)
    w[3] = 0.0
    weighted_mean(losses, w).backward()
    assert losses.grad is not None
    assert losses.grad[3].item() == 0.0
    assert bool((losses.grad[[0, 1, 2, 4, 5, 6, 7]] > 0).all())


def test_config_rejects_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ConfigError, match=r"'weighter\.options\.bogus'"):
        PTRConfig.from_options({'bogus': 1})
    with pytest.raises(ConfigError, match='score_mode'):
        PTRConfig.from_options({'score_mode': 'both'})
    with pytest.raises(ConfigError, match='w_min'):
        PTRConfig.from_options({'w_min': 2.0})
    with pytest.raises(ConfigError, match='center'):
        PTRConfig.from_options({'center': 'yes'})
    with pytest.raises(ConfigError, match='queue_draws'):
        PTRConfig.from_options({'queue_draws': 2048})
    with pytest.raises(ConfigError, match=r'weighter\.options\.beta: expected a number'):
        PTRConfig.from_options({'beta': True})
    cfg = PTRConfig.from_options({'beta': 1, 'warmup_steps': 0})
    assert cfg.beta == 1.0
    assert isinstance(cfg.beta, float)
    paper = PTRConfig.from_options(PAPER_DEFAULTS)
    assert (paper.score_mode, paper.center, paper.w_min, paper.beta) == ('future', False,
                                                                           0.25, 1.5)
    assert paper.kl_bound == pytest.approx(math.log(16))
    assert PTRConfig().kl_bound == pytest.approx(math.log(80))


def test_presets_differ_from_uniform_only_in_the_weighter(repo_root: Path) -> None:
    from ptr_core.configuration import load_config, to_dict
    from ptr_core.weighting import build_weighter

    train = repo_root / 'config' / 'train'
    uniform = to_dict(load_config(train / 'uniform.yaml'))
    for name, expected in (('ptr.yaml', PTRConfig(detach=True)), ('ptr_paper.yaml',
                                                       PTRConfig(**PAPER_DEFAULTS))):
        preset = to_dict(load_config(train / name))
        weighter = preset.pop('weighter')
        assert weighter['name'] == 'ptr'
        assert PTRConfig.from_options(weighter['options']) == expected
        assert build_weighter('ptr', weighter['options']).config == expected  # type: ignore[attr-defined]
        for cfg in (preset, uniform):
            cfg.pop('out_dir', None)
        assert preset == {k: v for k, v in uniform.items() if k != 'weighter'}
