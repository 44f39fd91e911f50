"""PTR's logged diagnostics (PTR_SPEC.md "Logged diagnostics") and the saturation warning.

Keys (all floats): ``nce_acc``, ``nce_margin``, ``T_mean/T_min/T_max/T_std``,
``w_mean/w_min/w_max/w_std``, ``w_at_min_share``, ``w_at_max_share``, ``ess``, ``ess_ratio``,
``tau``, ``beta``, ``r_hard``, ``valid_ratio``, ``candidates``, ``loss_id``, ``loss_rank``,
``warmup`` and the group means ``w_mean/robot/<name>``, ``w_mean/dataset/<i>``,
``w_mean/source/<tag>``. Statistics of T and the clip shares are over samples with a valid future;
the clip shares describe ``clip(exp(T / β))`` also during warm-up (where the applied w is 1), so a
saturating score shows before the warm-up ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ['BoundWarning', 'StepStats', 'group_means', 'step_metrics']

log = logging.getLogger(__name__)


@dataclass
class StepStats:
    """One step's tensors over the global batch (``[N]`` each)."""

    score: Tensor  # T (raw, before centring and smoothing)
    weights: Tensor  # the applied weights
    at_min: Tensor  # bool: exp(T_eff / β) clipped at w_min
    at_max: Tensor  # bool: clipped at w_max
    valid: Tensor  # bool: the sample has a future (scored)
    correct: Tensor  # bool: the own candidate has the largest logit
    margin: Tensor  # d_0 − max_{j>0} d_j
    n_candidates: Tensor  # |Y_i|
    robot: Tensor | None = None
    dataset: Tensor | None = None
    source: Tensor | None = None


def step_metrics(
    stats: StepStats, *, tau: float, beta: float, r_hard: float, loss_id: Tensor,
    loss_rank: Tensor, warmup: bool, robot_names: Sequence[str] = (),
    source_names: Sequence[str] = (),
) -> dict[str, float]:
    """All diagnostics of one step as plain floats (one device sync for the scalars)."""
    valid = stats.valid
    n_valid = valid.sum().clamp_min(1)
    w = stats.weights.double()
    t = stats.score.double()
    t_valid = torch.where(valid, t, t.new_zeros(()))
    t_mean = t_valid.sum() / n_valid
    big = torch.finfo(torch.float64).max
    vf = valid.double()
    scalars = {
        'nce_acc': (stats.correct & valid).double().sum() / n_valid,
        'nce_margin': (stats.margin.double() * vf).sum() / n_valid,
        'T_mean': t_mean,
        'T_min': torch.where(valid, t, t.new_full((), big)).min(),
        'T_max': torch.where(valid, t, t.new_full((), -big)).max(),
        'T_std': (((t - t_mean) ** 2 * vf).sum() / n_valid).sqrt(),
        'w_mean': w.mean(),
        'w_min': w.min(),
        'w_max': w.max(),
        'w_std': w.std(unbiased=False),
        'w_at_min_share': (stats.at_min & valid).double().sum() / n_valid,
        'w_at_max_share': (stats.at_max & valid).double().sum() / n_valid,
        'ess': w.sum() ** 2 / (w * w).sum().clamp_min(1e-300),
        'valid_ratio': vf.mean(),
        'candidates': (stats.n_candidates.double() * vf).sum() / n_valid,
        'loss_id': loss_id.detach().double(),
        'loss_rank': loss_rank.detach().double(),
    }
    values = torch.stack(list(scalars.values())).tolist()
    out = dict(zip(scalars, values))
    if not bool(valid.any()):
        for key in ('T_min', 'T_max'):
            out[key] = 0.0
    out['ess_ratio'] = out['ess'] / max(len(w), 1)
    out.update(tau=tau, beta=beta, r_hard=r_hard, warmup=float(warmup))
    if stats.robot is not None:
        out.update(group_means('robot', stats.robot, w, robot_names))
    if stats.dataset is not None:
        out.update(group_means('dataset', stats.dataset, w, ()))
    if stats.source is not None:
        out.update(group_means('source', stats.source, w, source_names))
    return out


def group_means(
    kind: str, ids: Tensor, weights: Tensor, names: Sequence[str]
) -> dict[str, float]:
    """``{'w_mean/<kind>/<name or id>': mean weight}`` for every id present (negative: skipped)."""
    ids = ids.long()
    keep = ids >= 0
    if not bool(keep.any()):
        return {}
    ids, w = ids[keep], weights[keep].double()
    size = int(ids.max()) + 1
    sums = torch.zeros(size, dtype=torch.float64, device=w.device).index_add_(0, ids, w)
    counts = torch.bincount(ids, minlength=size)
    out: dict[str, float] = {}
    for i, (s, c) in enumerate(zip(sums.tolist(), counts.tolist())):
        if c:
            name = names[i] if i < len(names) else str(i)
            out[f'w_mean/{kind}/{name}'] = s / c
    return out


class BoundWarning:
    """Logs a warning when one clip bound holds more than ``share`` of the weights.

    Throttled to once per ``every`` steps so a saturated run does not flood the log.
    """

    def __init__(self, share: float, every: int = 500) -> None:
        self.share = share
        self.every = every
        self._last = -every

    def __call__(self, metrics: dict[str, float], step: int) -> bool:
        for bound, key in (('w_max', 'w_at_max_share'), ('w_min', 'w_at_min_share')):
            if metrics.get(key, 0.0) > self.share:
                if step - self._last >= self.every:
                    self._last = step
                    log.warning(
                        'PTR at step %d: %.0f%% of weights sit at the %s clip bound; the score is '
                        'saturated and reweights nothing (try center: true, score_mode: action, '
                        'or a larger beta)', step, 100 * metrics[key], bound,
                    )
                return True
        return False
