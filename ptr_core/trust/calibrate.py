"""Scores to trust: a two-component mixture posterior, and the AUROCs that check it.

``fit_mixture(scores)`` fits two Gaussians with a shared variance by EM (so the posterior of the
upper component is a logistic function of the score: monotone, no second crossing). It is
*accepted* only when the data show a distinct bad group: the components are separated
(``|mu_hi - mu_lo| / sigma >= separation``), the two-component fit beats one Gaussian by BIC,
the smaller component holds at least ``min_share`` of the episodes and, for a score with a
natural chance level (``anchor``: 0 for the attribution score ``T``), the low component sits
closer to chance than to the high one. Otherwise every episode keeps trust 1: a skewed but
unimodal spread of good demonstrations (expert-only data) is not reweighted.

``trust = w_min + (1 - w_min) · P(good)``; with several signals ``P(good)`` is the product of
their posteriors (an episode must look good on every count).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ['Mixture', 'auroc', 'auroc_length_controlled', 'fit_mixture']

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Mixture:
    mu_lo: float
    mu_hi: float
    sigma: float
    share_lo: float  # weight of the low ("bad") component
    accepted: bool
    bic_gain: float = 0.0  # BIC(one Gaussian) - BIC(mixture); > 0 favours the mixture

    @property
    def separation(self) -> float:
        return (self.mu_hi - self.mu_lo) / max(self.sigma, 1e-12)

    def posterior_good(self, x: npt.ArrayLike, *, sigma: float | None = None) -> Array:
        """P(upper component | x); 1 everywhere when the mixture was not accepted."""
        arr = np.asarray(x, np.float64)
        if not self.accepted:
            return np.ones_like(arr)
        s = self.sigma if sigma is None else sigma
        # log-odds of hi vs lo with a shared variance: linear in x
        slope = (self.mu_hi - self.mu_lo) / s**2
        mid = 0.5 * (self.mu_hi + self.mu_lo)
        prior = math.log((1 - self.share_lo) / self.share_lo)
        z = np.clip(slope * (arr - mid) + prior, -50, 50)
        out: Array = 1.0 / (1.0 + np.exp(-z))
        return out

    def to_json(self) -> dict[str, float | bool]:
        return {'mu_lo': self.mu_lo, 'mu_hi': self.mu_hi, 'sigma': self.sigma,
                'share_lo': self.share_lo, 'separation': self.separation,
                'bic_gain': self.bic_gain, 'accepted': self.accepted}


def fit_mixture(
    scores: npt.ArrayLike, *, separation: float = 3.0, min_share: float = 0.05,
    anchor: float | None = None, iters: int = 200,
) -> Mixture:
    """EM for two shared-variance Gaussians on 1-D ``scores`` (see the module docstring)."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 4 or float(np.std(x)) < 1e-12:
        mu = float(np.mean(x)) if len(x) else 0.0
        return Mixture(mu, mu, 1.0, 0.5, False)
    lo, hi = (float(v) for v in np.quantile(x, [0.2, 0.8]))
    var = float(np.var(x)) / 4 + 1e-12
    share = 0.5
    floor = 1e-6 * float(np.var(x)) + 1e-12
    for _ in range(iters):
        ll_lo = -0.5 * (x - lo) ** 2 / var + math.log(share)
        ll_hi = -0.5 * (x - hi) ** 2 / var + math.log(1 - share)
        r = 1.0 / (1.0 + np.exp(np.clip(ll_lo - ll_hi, -50, 50)))  # P(hi)
        n_hi = float(r.sum())
        n_lo = len(x) - n_hi
        if n_hi < 1e-6 or n_lo < 1e-6:
            break
        new_lo = float(((1 - r) * x).sum() / n_lo)
        new_hi = float((r * x).sum() / n_hi)
        var = float(((1 - r) * (x - new_lo) ** 2 + r * (x - new_hi) ** 2).sum() / len(x))
        var = max(var, floor)
        share = min(max(n_lo / len(x), 1e-4), 1 - 1e-4)
        done = abs(new_lo - lo) + abs(new_hi - hi) < 1e-9
        lo, hi = new_lo, new_hi
        if done:
            break
    if lo > hi:
        lo, hi, share = hi, lo, 1 - share
    sigma = math.sqrt(var)
    sep = (hi - lo) / sigma
    n = len(x)
    ll_one = -0.5 * n * (math.log(2 * math.pi * float(np.var(x))) + 1.0)
    a = math.log(share) - 0.5 * (x - lo) ** 2 / var
    b = math.log(1 - share) - 0.5 * (x - hi) ** 2 / var
    ll_two = float(np.sum(np.logaddexp(a, b))) - 0.5 * n * math.log(2 * math.pi * var)
    bic_gain = 2.0 * (ll_two - ll_one) - 2.0 * math.log(n)  # two extra parameters
    accepted = (sep >= separation and bic_gain > 0 and min(share, 1 - share) >= min_share
                and (anchor is None or lo - anchor < 0.5 * (hi - anchor)))
    return Mixture(lo, hi, sigma, share, bool(accepted), bic_gain)


def auroc(good: Sequence[float] | Array, bad: Sequence[float] | Array) -> float:
    """P(score of a good episode > score of a bad one), ties counted half."""
    g = np.asarray(good, np.float64)
    b = np.asarray(bad, np.float64)
    if not len(g) or not len(b):
        return float('nan')
    diff = g[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def auroc_length_controlled(
    scores: npt.ArrayLike, lengths: npt.ArrayLike, good: npt.ArrayLike, bad: npt.ArrayLike,
) -> float:
    """AUROC of the score's residual after a least-squares fit on log(length) over the
    episodes compared: a score that only prefers short episodes drops to 0.5."""
    s = np.asarray(scores, np.float64)
    ln = np.log(np.asarray(lengths, np.float64))
    sel = np.asarray(good, bool) | np.asarray(bad, bool)
    if sel.sum() < 3 or np.std(ln[sel]) < 1e-12:
        return auroc(s[np.asarray(good, bool)], s[np.asarray(bad, bool)])
    a = np.stack([ln[sel], np.ones(int(sel.sum()))], axis=1)
    coef, *_ = np.linalg.lstsq(a, s[sel], rcond=None)
    res = s - (coef[0] * ln + coef[1])
    return auroc(res[np.asarray(good, bool)], res[np.asarray(bad, bool)])
