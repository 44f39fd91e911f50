"""Progress toward the episode's own end state: a signal for what label consistency cannot see.

A slow, hesitant or detouring operator records the actions it executed: every label is right,
and the consequence scorer (``attribution``) scores its windows like an expert's. What differs
is how the episode moves toward where it ends. For an episode with (normalized) states
``s[0..T-1]``, ``d(t) = |s[t] - s[T-1]|`` and the progress over the next ``L`` steps is
``g(t) = (d(t) - d(t+L)) / L`` (fewer steps at the end). Its *rate* is ``r(t) = g(t) / c(t)``,
``c(t)`` the median progress of every episode's moving windows as far from their own end
(``BINS`` quantile bins of ``d``; at least a tenth of the overall median): how fast the
demonstrations progress from that far out. 1 is the consensus, 0 a pause, below 0 a detour,
clipped to [-2, 2]. A window already at its episode's end
(``d(t) <= AT_END * d(0)``: the expert holding after success) is neutral (rate 1). The episode
score is the mean rate over its moving windows (an expert that reaches early and holds is not
diluted toward 1), the frame score the moving average of the rates over L frames.
No reward, no rollout, no labels: states only. (The consensus by the nearest states of other
episodes was tried first: with a goal per episode, the nearest states are rarely as far from
their own end, and expert rates spread from 0.1 to the clip.)

Calibrated like the attribution score, with 0 (no progress) as the chance anchor but its own
fraction (``FRACTION``: an episode progressing at under three quarters of the good group's
pace is poor; chosen on the dev set of ``tests/ptr_core/test_trust_progress.py``, where the
30 %-speed, hesitant and detouring operators scored 0.4-0.9 against experts' 1.1-1.6), and
combined as ``P(good) = P_attribution(good) · P_progress(good)`` (``second_signal:
progress``). No no-signal test: the rate is computed from the states, not learnt.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ptr_core.weighting.trust.features import WindowFeatures

__all__ = ['AT_END', 'FRACTION', 'episode_progress', 'progress_rates']

AT_END = 0.05  # a window this close to its episode's end state (share of d(0)) is at the end
RATE_CLIP = 2.0
BINS = 8  # distance-to-end bins of the consensus
FRACTION = 0.75  # the calibration's anchor fraction for this signal (module docstring)


def _own_progress(
    feats: WindowFeatures, span: int,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Per window: its progress per step toward its episode's end state over the next
    ``span`` steps, its distance from that end state, and whether it is still moving (not at
    the end, a step left)."""
    state = feats.state.double().cpu().numpy()
    ep = feats.episode.cpu().numpy()
    order = np.lexsort((feats.frame.cpu().numpy(), ep))
    bounds = np.flatnonzero(np.diff(ep[order])) + 1
    g = np.zeros(feats.n)
    dist = np.zeros(feats.n)
    moving = np.zeros(feats.n, bool)
    for rows in np.split(order, bounds):
        if not len(rows):
            continue
        d = np.linalg.norm(state[rows] - state[rows[-1]], axis=1)
        t = np.arange(len(rows))
        ahead = np.minimum(t + span, len(rows) - 1)
        g[rows] = (d - d[ahead]) / np.maximum(ahead - t, 1)
        dist[rows] = d
        moving[rows] = (d > AT_END * max(float(d[0]), 1e-12)) & (ahead > t)
    return g, dist, moving


def progress_rates(feats: WindowFeatures, *, span: int) -> tuple[Tensor, Tensor]:
    """The progress rate ``r(t)`` of every window (module docstring) and whether the window
    is still moving, both ``[N]``."""
    g, dist, moving = _own_progress(feats, span)
    if not moving.any():
        return torch.ones(feats.n), torch.from_numpy(moving)
    edges = np.quantile(dist[moving], np.linspace(0, 1, BINS + 1)[1:-1])
    bin_of = np.searchsorted(edges, dist)
    overall = float(np.median(g[moving]))
    floor = 0.1 * abs(overall) + 1e-12
    consensus = np.full(BINS, max(overall, floor))
    for b in range(BINS):
        sel = moving & (bin_of == b)
        if sel.any():
            consensus[b] = max(float(np.median(g[sel])), floor)
    rate = np.clip(g / consensus[bin_of], -RATE_CLIP, RATE_CLIP)
    rate[~moving] = 1.0
    return torch.from_numpy(rate).float(), torch.from_numpy(moving)



def episode_progress(rate: Tensor, moving: Tensor, episode: Tensor,
                     episodes: int) -> npt.NDArray[np.float64]:
    """Per episode, the mean rate of its moving windows (NaN: none moves). (The median kept a
    long detour at the experts' level on the dev set: 2 of 3 detours at 1.1 against experts'
    1.1-1.6.)"""
    r, ep, keep = rate.double().numpy(), episode.numpy(), moving.numpy()
    sums = np.bincount(ep[keep], r[keep], minlength=episodes)
    counts = np.bincount(ep[keep], minlength=episodes)
    with np.errstate(invalid='ignore', divide='ignore'):
        out: npt.NDArray[np.float64] = np.where(counts > 0, sums / counts, np.nan)
    return out
