"""Baselines that could win, as training arms: untrained episode checks turned into trust files
that feed the same trust-sampled post-training as the shipped trust (``{weighter: trust,
options: {baseline: NAME}}``).

* ``length`` — how long the arm keeps moving: the step after which the end effector's position
  no longer changes by more than ``MOVING_M`` per step (with a fixed horizon every episode has
  the same length; the time to come to rest is the length that is left). Shorter is better.
* ``lag_correlation`` — per episode, the correlation between the recorded xyz command
  ``a[t]`` and the end-effector step ``ee[t+k+1] - ee[t+k]``, the lag ``k`` in 0..``MAX_LAG``
  picked from the data (the one with the highest median correlation over the set's
  episodes, no tags). Higher is better.
* ``random`` — a length-matched random subset: episodes drawn at random until their frames
  match the frames the set's ``trust`` arm keeps (trust-weighted), or ``keep`` of the frames
  without one. It tells selection from merely training on less data.

A score becomes trust by one rule without a tuned threshold: trust 1 for the episodes above the
best two-group split of the scores (the split that minimises the within-group variance, Otsu's
rule), 0 for the others; ``keep: q`` keeps the best ``q`` share of the episodes instead, and
``keep: matched`` the best episodes until their frames match what the ``trust`` arm keeps (the
same amount of data, chosen by the check: a comparison of rankings alone).
Inverse dynamics is a scorer signal (``score: {signal: inverse_dynamics}``), not a check here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ptr_sim.benchmark.cells import Cell
from ptr_sim.benchmark_config import BASELINES

__all__ = ['BASELINES', 'baseline_trust', 'lag_correlations', 'rest_lengths', 'two_group_keep']

MAX_LAG = 8
MOVING_M = 0.001  # an end-effector step shorter than this (m per control step) is at rest
EE = ('ee_x', 'ee_y', 'ee_z')

FloatArray = npt.NDArray[np.float64]


def _ee_and_command(ep: Any, state_names: Sequence[str]) -> tuple[FloatArray, FloatArray]:
    """The end-effector positions ``[T, 3]`` and recorded xyz commands ``[T, 3]``."""
    idx = [list(state_names).index(n) for n in EE]
    ee = np.asarray(ep.state, dtype=np.float64)[:, idx]
    return ee, np.asarray(ep.action, dtype=np.float64)[:, :3]


def lag_correlations(ee: FloatArray, command: FloatArray) -> FloatArray:
    """``[MAX_LAG + 1]``: the correlation of ``command[t]`` with ``ee[t+k+1] - ee[t+k]`` over
    every xyz value of the episode, for each lag ``k`` (nan where undefined)."""
    out = np.full(MAX_LAG + 1, np.nan)
    for k in range(MAX_LAG + 1):
        step = ee[k + 1:] - ee[k:-1]
        n = min(len(command), len(step))
        x, y = command[:n].ravel(), step[:n].ravel()
        if n > 2 and x.std() > 0 and y.std() > 0:
            out[k] = float(np.corrcoef(x, y)[0, 1])
    return out


def rest_lengths(ees: Sequence[FloatArray]) -> FloatArray:
    """Each episode's steps until its end effector last moved more than ``MOVING_M``."""
    out = []
    for ee in ees:
        moving = np.flatnonzero(np.linalg.norm(np.diff(ee, axis=0), axis=1) > MOVING_M)
        out.append(float(moving[-1] + 1) if len(moving) else 0.0)
    return np.asarray(out)


def two_group_keep(scores: FloatArray, keep: float | None = None) -> FloatArray:
    """1 for the episodes kept, 0 for the others: above the best two-group split of ``scores``
    (Otsu), or the best ``keep`` share. Ties at the cut are kept; non-finite scores never."""
    s = np.where(np.isfinite(scores), scores, -np.inf)
    if keep is not None:
        n = max(1, round(keep * len(s)))
        return np.asarray(s >= np.sort(s)[::-1][n - 1], dtype=np.float64)
    finite = np.sort(s[np.isfinite(s)])
    if len(finite) < 2 or finite[0] == finite[-1]:
        return np.asarray(np.isfinite(s), dtype=np.float64)
    best, cut = np.inf, finite[-1]
    for i in range(1, len(finite)):
        lo, hi = finite[:i], finite[i:]
        within = lo.var() * len(lo) + hi.var() * len(hi)
        if within < best and finite[i - 1] < finite[i]:
            best, cut = within, finite[i]
    return np.asarray(s >= cut, dtype=np.float64)


def _scores(name: str, ds: Any, rng: np.random.Generator) -> FloatArray:
    eps = ds.episodes()
    robots = ds.manifest['robots']
    pairs = [_ee_and_command(ep, robots[ep.robot]['state_names']) for ep in eps]
    if name == 'length':
        return np.asarray(-rest_lengths([ee for ee, _ in pairs]), dtype=np.float64)
    if name == 'lag_correlation':
        table = np.stack([lag_correlations(ee, cmd) for ee, cmd in pairs])
        lag = int(np.nanargmax(np.nanmedian(table, axis=0)))
        return np.asarray(table[:, lag])
    return np.asarray(rng.permutation(len(eps)), dtype=np.float64)  # random: a draw order


def _keep_frames(order: FloatArray, lengths: FloatArray, frames: float) -> FloatArray:
    """Episodes drawn in ``order`` (highest first) until their frames reach ``frames``."""
    kept = np.zeros(len(order))
    total = 0.0
    for i in np.argsort(-order):
        if total >= frames:
            break
        kept[i] = 1.0
        total += lengths[i]
    return kept


def baseline_trust(out: Path, cell: Cell, matched: Path | None) -> tuple[Path, dict[str, Any]]:
    """The cell's baseline trust file (``options: {baseline, keep}``) and its report; ``matched``
    is the set's ``trust`` arm's trust file, which ``random`` matches in frames."""
    from bag_tools.dataset import Dataset
    from bag_tools.trust import (
        EpisodeTrust,
        dataset_content_hash,
        make_trust_file,
        read_trust,
        write_trust,
    )
    from ptr_core.data import SOURCE_TAG
    from ptr_core.weighting.trust.calibrate import auroc
    from ptr_core.weighting.trust.crossfit import EXPERT

    name = str(cell.method.options['baseline'])
    keep = cell.method.options.get('keep')
    ds = Dataset.open(cell.data_dir(out))
    eps = ds.episodes()
    lengths = np.asarray([ep.length for ep in eps], dtype=np.float64)
    scores = _scores(name, ds, np.random.default_rng([cell.seed, 26]))
    if matched is not None and (name == 'random' or keep == 'matched'):
        got = {e.episode_id: e.trust for e in read_trust(matched).episodes}
        trust = _keep_frames(scores, lengths, sum(got.get(ep.id, 0.0) * ep.length for ep in eps))
    elif keep == 'matched':
        msg = f'{cell.method.name}: keep: matched needs a trust arm named trust in the preset'
        raise ValueError(msg)
    elif name == 'random':
        trust = _keep_frames(scores, lengths,
                             float(keep if keep is not None else 0.5) * float(lengths.sum()))
    else:
        trust = two_group_keep(scores, None if keep is None else float(keep))
    digest = dataset_content_hash(ds)
    episodes = [EpisodeTrust(digest, ep.id, float(w), float(s) if np.isfinite(s) else 0.0, 0,
                             np.full(ep.length, float(w)))
                for ep, w, s in zip(eps, trust, scores)]
    sources = [str(ep.tags.get(SOURCE_TAG, '')) for ep in eps]
    folder = out / 'trust' / f'seed{cell.seed}' / cell.task / cell.data / f'baseline-{name}'
    file = write_trust(folder / 'trust.json', make_trust_file(
        {'baseline': name, 'keep': keep, 'matched': str(matched) if matched else None},
        [(ds, episodes)]))
    src = np.asarray(sources)
    good = src == EXPERT
    table: dict[str, dict[str, float]] = {'trust': {}, name: {}}
    for s in sorted(set(sources) - {EXPERT, ''}):
        if good.any():
            table['trust'][s] = auroc(trust[good], trust[src == s])
            table[name][s] = auroc(scores[good], scores[src == s])
    by_source: dict[str, list[float]] = {}
    for s, w in zip(sources, trust):
        by_source.setdefault(s, []).append(float(w))
    return file, {'file': str(file), 'scoring_s': 0.0, 'seconds': {}, 'auroc': table,
                  'auroc_length_controlled': {},
                  'trust_by_source': {k: float(np.mean(v)) for k, v in by_source.items()}}
