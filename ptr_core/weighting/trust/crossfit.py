"""Cross-fitted scoring: K scorer copies over episode folds, per-episode trust, baselines.

``score_datasets`` is what ``ptr score`` runs:

1. one frozen pass of the base policy's encoder over every window (``features``);
2. episodes are dealt into ``folds`` folds (seeded); copy ``k`` trains on every fold but ``k``
   and scores fold ``k``, so no episode is scored by a scorer that saw it (``in_sample``: one
   copy trained and scored on everything, the ablation);
3. per episode: the mean out-of-fold score over all its windows (``attribution``), mapped to
   ``P(good)`` by ``calibrate.fit_calibration``; per frame: the same on the moving average of the
   window scores (a partial bad stretch, e.g. a recovery detour, keeps low frame trust);
4. the second signal (``second_signal: bc_loss``): the out-of-fold masked MSE of a small
   behaviour-cloning probe ``h → chunk`` — high for noisy, recovering or hesitant demos whose
   labels are right but whose actions are not what the other episodes do in that context;
   per-window, so it does not grow with episode length; or (``second_signal: progress``) the
   rate of progress toward the episode's own end state against the demonstrations' pace from
   as far out (``progress``: slow, hesitant, detouring operators). Combined as
   ``P(good) = P_attr(good) · P_second(good)``, ``trust = w_min + (1 - w_min) · P(good)``;
5. baselines, computed always (``signals`` of every episode): ``progress``,
   ``inverse_dynamics`` (out-of-fold error of an MLP predicting a[t] from s[t] and
   s[t+1] - s[t]), ``length`` (shorter = better)
   and ``smoothness`` (smaller mean squared action change = better). Higher is better for every
   signal; ``ptr score`` prints their AUROCs when episodes carry ``ptr.source`` tags.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from bag_tools.trust import (
    EpisodeTrust,
    TrustFile,
    dataset_content_hash,
    drop_warning,
    make_trust_file,
)
from ptr_core.data import open_datasets
from ptr_core.weighting.trust.calibrate import (
    CALIBRATION_VERSION,
    Calibration,
    auroc,
    auroc_length_controlled,
    episode_noise_p,
    fit_calibration,
)
from ptr_core.weighting.trust.config import TrustConfig
from ptr_core.weighting.trust.features import WindowFeatures, extract_features
from ptr_core.weighting.trust.progress import FRACTION as PROGRESS_FRACTION
from ptr_core.weighting.trust.progress import episode_progress, progress_rates
from ptr_core.weighting.trust.scorer import (
    fit_regressor,
    fit_scorer,
    nearest_state_neighbours,
    regression_error,
    score_windows,
    training_steps,
)

__all__ = ['SIGNALS', 'ScoreResult', 'refit_trust', 'score_datasets', 'signal_aurocs']

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
SIGNALS = ('trust', 'attribution', 'bc_loss', 'progress', 'inverse_dynamics', 'length',
           'smoothness')
EXPERT = 'expert'
# each signal's chance level, the calibration's anchor (none: no natural one)
ANCHORS = {'attribution': 0.0, 'progress': 0.0}
FRACTIONS = {'progress': PROGRESS_FRACTION}  # the others: ``anchor_fraction``
# the behaviour-cloning probe's out-of-fold loss says "disagrees with the consensus" only when
# the probe learned a consensus: from fewer episodes it ranks no better than chance (4 experts
# of 12 episodes, 40-step base: AUROC 0.53) yet a tight pair of outliers passes the mixture's
# tests. A guard, not a tuned value: below it the trust is the attribution's alone
CONSENSUS_MIN_EPISODES = 20
# a signal's calibration: the mixture, the episodes' P(good), each episode's frame P(good)
_Fit = tuple[Calibration, npt.NDArray[np.float64], list[npt.NDArray[np.float64]]]


@dataclass
class ScoreResult:
    trust: TrustFile
    sources: list[str]  # per episode, in ``trust.episodes`` order
    lengths: list[int]
    seconds: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    mixtures: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # also logged at WARNING

    def aurocs(self, *, length_controlled: bool = False) -> dict[str, dict[str, float]]:
        return signal_aurocs(self.trust, self.sources, self.lengths,
                             length_controlled=length_controlled)


def _checkpoint_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for name in ('config.json', 'model.safetensors', 'ema.safetensors'):
        file = path / name
        if file.is_file():
            digest.update(name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _folds(n_episodes: int, k: int, seed: int) -> npt.NDArray[np.int64]:
    perm = np.random.default_rng((seed, 31337)).permutation(n_episodes)
    folds = np.empty(n_episodes, np.int64)
    folds[perm] = np.arange(n_episodes) % k
    return folds


def _episode_mean(values: Tensor, feats: WindowFeatures, rows: Tensor) -> npt.NDArray[np.float64]:
    n = len(feats.episodes)
    sums = np.zeros(n)
    counts = np.zeros(n)
    np.add.at(sums, feats.episode[rows].numpy(), values.double().numpy())
    np.add.at(counts, feats.episode[rows].numpy(), 1.0)
    with np.errstate(invalid='ignore'):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _frame_series(
    values: Tensor, feats: WindowFeatures, rows: Tensor, width: int,
) -> list[npt.NDArray[np.float64]]:
    """Per episode, the window values on its frames (nearest window fills the gaps), smoothed
    by a centred moving average of ``width`` frames."""
    out = []
    ep_of = feats.episode[rows].numpy()
    fr_of = feats.frame[rows].numpy()
    vals = values.double().numpy()
    for e, info in enumerate(feats.episodes):
        sel = ep_of == e
        series = np.full(info.length, np.nan)
        series[fr_of[sel]] = vals[sel]
        known = np.flatnonzero(np.isfinite(series))
        if not len(known):
            out.append(np.zeros(info.length))
            continue
        idx = known[np.clip(np.searchsorted(known, np.arange(info.length)), 0, len(known) - 1)]
        series = series[idx]
        w = max(1, min(width, info.length))
        kernel = np.ones(w) / w
        padded = np.pad(series, (w // 2, w - 1 - w // 2), mode='edge')
        out.append(np.convolve(padded, kernel, mode='valid'))
    return out


def _calibrate(scores: npt.ArrayLike, config: TrustConfig, anchor: float | None,
               signal_p: float = float('nan'), fraction: float | None = None) -> Calibration:
    """``fit_calibration`` with the scorer's acceptance options (``fraction``: the signal's
    own anchor fraction, default ``config.anchor_fraction``)."""
    return fit_calibration(scores, separation=config.separation, min_share=config.min_share,
                           anchor=anchor, anchor_fraction=fraction or config.anchor_fraction,
                           signal_p=signal_p, alpha=config.signal_alpha)


def _noise_p(values: Tensor, feats: WindowFeatures, rows: Tensor, config: TrustConfig) -> float:
    """``episode_noise_p`` of per-window ``values`` (on ``rows``), in blocks of one chunk."""
    return episode_noise_p(values.double().numpy(), feats.episode[rows].numpy(),
                           feats.frame[rows].numpy(), block=feats.chunk_length,
                           seed=config.seed)


def _posteriors(
    episode_scores: npt.NDArray[np.float64], frames: list[npt.NDArray[np.float64]],
    config: TrustConfig, *, anchor: float | None, signal_p: float = float('nan'),
    fraction: float | None = None,
) -> _Fit:
    """Episode and frame P(good) from one signal (NaN scores count as good; no split when
    ``signal_p`` exceeds ``config.signal_alpha``)."""
    mix = _calibrate(episode_scores, config, anchor, signal_p, fraction)
    p_ep = np.where(np.isfinite(episode_scores), mix.posterior_good(
        np.nan_to_num(episode_scores, nan=mix.mu_hi)), 1.0)
    flat = np.concatenate(frames) if frames else np.zeros(0)
    frame_mix = _calibrate(flat, config, anchor, fraction=fraction)
    if mix.accepted and frame_mix.accepted:
        p_fr = [frame_mix.posterior_good(f) for f in frames]
    else:  # no evidence of bad stretches: every frame keeps its episode's posterior
        p_fr = [np.full(len(f), p) for f, p in zip(frames, p_ep)]
    return mix, p_ep, p_fr


def _oof_regression(
    x: Tensor, y: Tensor, mask: Tensor, rows: Tensor, fold_of_row: npt.NDArray[np.int64],
    config: TrustConfig, *, seed: int, device: torch.device | None = None,
    learn_from: npt.NDArray[np.bool_] | None = None,
) -> Tensor:
    """Out-of-fold (or in-sample) per-row masked MSE of the probe ``x → y`` on ``rows``,
    each copy fitted on the ``learn_from`` rows of the other folds (all of them if none)."""
    err = torch.zeros(len(rows))
    learn = np.ones(len(rows), bool) if learn_from is None else learn_from
    groups = [(rows[torch.from_numpy(learn)], rows)] if config.in_sample else [
        (rows[torch.from_numpy(_fit_rows(fold_of_row != k, learn))],
         rows[torch.from_numpy(fold_of_row == k)])
        for k in range(config.folds)]
    for k, (train, test) in enumerate(groups):
        if not len(test):
            continue
        model = fit_regressor(x[train], y[train], mask[train], config, seed=seed + k,
                              device=device)
        where = torch.isin(rows, test)
        err[where] = regression_error(model, x[rows[where]], y[rows[where]], mask[rows[where]],
                                      device=device)
    return err


def _fit_rows(
    other_folds: npt.NDArray[np.bool_], learn: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """A copy's training rows: the other folds' ``learn`` rows, or all of the other folds'
    when none of them is one (a fold of wrong labels only)."""
    both = other_folds & learn
    return both if both.any() else other_folds


def score_datasets(
    paths: Sequence[str | Path],
    *,
    init: str | Path,
    config: TrustConfig | None = None,
    progress: Progress | None = None,
    device: str | torch.device = 'cpu',
) -> ScoreResult:
    """Fit the cross-fitted scorer on ``init``'s frozen encoder and score every episode (the
    encoder pass, the neighbour search and every scorer copy and probe on ``device``)."""
    from ptr_core.inference import load_policy

    config = config or TrustConfig()
    t_start, cpu_start = time.monotonic(), time.process_time()
    torch.manual_seed(config.seed)
    policy, ckpt = load_policy(init)
    policy.requires_grad_(False)
    datasets = open_datasets(paths)
    data_cfg = ckpt.config.data
    feats = extract_features(
        policy, ckpt.preprocessor, datasets, chunk_length=policy.chunk_length,
        delta=data_cfg.delta(policy.chunk_length), consequence=config.consequence,
        progress=None if progress is None else (lambda d, n: progress('features', d, n)),
        device=device,
    )
    t_feat = time.monotonic()
    neighbours = nearest_state_neighbours(feats, config.knn)
    n_ep = len(feats.episodes)
    folds = _folds(n_ep, config.folds, config.seed)
    rows = torch.arange(feats.n)[feats.has_next]
    fold_of_row = folds[feats.episode[rows].numpy()]
    score, refined = _rounds(feats, rows, fold_of_row, neighbours, config, progress)
    t_fit, cpu_fit = time.monotonic(), time.process_time()
    attribution = None if config.signal != 'attribution' else _drive_fit(
        'attribution', score, _episode_mean(score, feats, rows), feats, rows, config)
    consensus, learned_from = _consensus_rows(feats, rows, attribution, config)
    bc_err, inv_err = _probe_errors(feats, rows, fold_of_row, config, consensus=consensus)
    t_probe, cpu_probe = time.monotonic(), time.process_time()
    rate, moving = progress_rates(feats, span=feats.chunk_length)
    post = _signal_posteriors(feats, rows, score, bc_err, inv_err, (rate, moving), config,
                              consensus_episodes=learned_from, drive_fit=attribution)
    digests = [dataset_content_hash(ds) for ds in datasets]
    per_dataset, sources, lengths = _episode_trusts(feats, post, folds, digests, config)
    drive, mix_a, mix_b = post.drive, post.mix_a, post.mix_b
    scorer = {**_scorer_record(init, feats, post, config, windows=len(rows)),
              'delta': data_cfg.delta(feats.chunk_length), 'rounds_run': 1 + refined}
    trust = make_trust_file(scorer, list(zip(datasets, per_dataset)))
    warnings = _warnings(post, trust, config)
    t_end = time.monotonic()
    seconds = {'features_s': t_feat - t_start, 'scorer_s': t_fit - t_feat,
               'probes_s': t_probe - t_fit, 'total_s': t_end - t_start,
               'cpu_s': time.process_time() - cpu_start, 'probes_cpu_s': cpu_probe - cpu_fit,
               'threads': torch.get_num_threads()}
    log.info('trust: %d episodes, %d windows scored in %.1f s (attribution mixture %s)',
             n_ep, len(rows), seconds['total_s'], mix_a.to_json())
    return ScoreResult(trust, sources, lengths, seconds, len(rows),
                       {drive: mix_a.to_json(), post.second: mix_b.to_json()}, warnings)


def _scorer_record(init: str | Path, feats: WindowFeatures, post: _Posteriors,
                   config: TrustConfig, *, windows: int) -> dict[str, Any]:
    """What the trust file says of its scorer: every option, the base it read, where and how
    long each copy trained, the calibration's version and the fitted mixtures."""
    drive, second = post.drive, post.second
    return {
        **config.to_dict(), 'init': str(Path(init).resolve()),
        'init_hash': _checkpoint_hash(Path(init)), 'chunk_length': feats.chunk_length,
        'candidates': config.candidates, 'device': str(feats.device),
        'calibration': CALIBRATION_VERSION, 'steps_per_copy': training_steps(config, windows),
        'combine': f'P_{drive}*P_{second}' if post.use_second else f'P_{drive}',
        f'mixture_{drive}': post.mix_a.to_json(), f'mixture_{second}': post.mix_b.to_json(),
    }


def _warnings(post: _Posteriors, trust: TrustFile, config: TrustConfig) -> list[str]:
    """Log (WARNING) and return what the user must hear about the trust: a split refused for
    want of signal, and a trust that drops more than half of the episodes."""
    out = []
    for name, mix, used in ((post.drive, post.mix_a, True),
                            (post.second, post.mix_b, post.use_second)):
        if used and mix.refused:
            out.append(
                f'trust: refused to split the episodes by {name}: their scores differ no more '
                f'than their own noise (p = {mix.signal_p:.2g} > signal_alpha '
                f'{config.signal_alpha:g}); every episode keeps trust 1 (too few episodes, '
                'or a base/scorer that learned too little: more base steps or `--set steps`)')
    dropped = drop_warning([ep.trust for ep in trust.episodes],
                           [len(ep.frame_trust) for ep in trust.episodes],
                           where=', '.join(d.path for d in trust.datasets))
    if dropped is not None:
        out.append(dropped)
    for line in out:
        log.warning('%s', line)
    return out


def _rounds(
    feats: WindowFeatures, rows: Tensor, fold_of_row: npt.NDArray[np.int64],
    neighbours: Tensor, config: TrustConfig, progress: Progress | None,
) -> tuple[Tensor, int]:
    """The attribution scores after ``config.rounds`` rounds (each refit drawn by the last
    round's out-of-fold trust), and how many refits ran."""
    score = _attribution(feats, rows, fold_of_row, neighbours, config, progress)
    refined = 0
    for r in range(1, config.rounds):
        weights = _round_weights(feats, rows, score, config)
        if weights is None:  # no distinct bad group: nothing to refine
            break
        refit = dataclasses.replace(config, steps=config.refine_steps or config.steps)
        score = _attribution(feats, rows, fold_of_row, neighbours, refit, progress,
                             weights=weights, seed=config.seed + 1000 * r)
        refined = r
    return score, refined


def _round_weights(feats: WindowFeatures, rows: Tensor, score: Tensor,
                   config: TrustConfig) -> Tensor | None:
    """Per-window training weights for the next round (``refit_trust`` of each window's
    episode); None when the mixture finds no distinct bad group."""
    trust = refit_trust(_episode_mean(score, feats, rows), config,
                        signal_p=_noise_p(score, feats, rows, config))
    return None if trust is None else torch.from_numpy(trust[feats.episode.numpy()]).float()


def refit_trust(episode_scores: npt.NDArray[np.float64], config: TrustConfig, *,
                signal_p: float = float('nan')) -> npt.NDArray[np.float64] | None:
    """Per-episode draw weights of the next round's refit: the out-of-fold trust from this
    round's scores, times ``w_min`` for an episode closer to chance than ``anchor_fraction``
    of the way to the good group's centre (the calibration's own line: no share of good
    episodes is assumed) and, when ``refine_keep`` < 1, outside that top share by score (an
    episode without a score keeps its trust); None when the mixture finds no distinct bad
    group, or the scores carry no signal (``signal_p``: nothing to refine)."""
    mix = _calibrate(episode_scores, config, 0.0, signal_p)
    if not mix.accepted:
        return None
    finite = np.isfinite(episode_scores)
    score = np.nan_to_num(episode_scores, nan=np.inf)  # no score: kept
    p = np.where(finite, mix.posterior_good(np.nan_to_num(episode_scores, nan=mix.mu_hi)), 1.0)
    kept = score >= config.anchor_fraction * mix.mu_hi
    if config.refine_keep < 1.0 and finite.any():
        kept &= score >= np.quantile(episode_scores[finite], 1.0 - config.refine_keep)
    trust: npt.NDArray[np.float64] = (config.w_min + (1 - config.w_min) * p) \
        * np.where(kept, 1.0, config.w_min)
    return trust


def _attribution(
    feats: WindowFeatures, rows: Tensor, fold_of_row: npt.NDArray[np.int64],
    neighbours: Tensor, config: TrustConfig, progress: Progress | None, *,
    weights: Tensor | None = None, seed: int | None = None,
) -> Tensor:
    """Out-of-fold (or in-sample) consequence score of every window in ``rows``: copy ``k``
    trains on every fold but ``k`` (windows drawn by ``weights`` when given) and scores fold
    ``k``."""
    seed = config.seed if seed is None else seed
    score = torch.zeros(len(rows))
    copies = 1 if config.in_sample else config.folds
    for k in range(copies):
        train = rows if config.in_sample else rows[torch.from_numpy(fold_of_row != k)]
        test_sel = torch.ones(len(rows), dtype=torch.bool) if config.in_sample else \
            torch.from_numpy(fold_of_row == k)
        if progress is not None:
            progress('scorer', k, copies)
        model = fit_scorer(feats, train, neighbours, config, seed=seed + 101 * k,
                           weights=weights)
        score[test_sel] = score_windows(model, feats, rows[test_sel], neighbours, config,
                                        seed=seed + 7 + k)
    if progress is not None:
        progress('scorer', copies, copies)
    return score


def _drive_fit(
    drive: str, window_values: Tensor | None, episode_values: npt.NDArray[np.float64],
    feats: WindowFeatures, rows: Tensor, config: TrustConfig,
) -> _Fit:
    """The calibrated episode and frame P(good) of the signal that drives the trust (an
    episode-level one -- length, smoothness -- has no windows: no frame series, no noise
    test)."""
    if window_values is None:
        frames = [np.full(e.length, v) for e, v in zip(feats.episodes, episode_values)]
        signal_p = float('nan')
    else:
        frames = _frame_series(window_values, feats, rows, config.smooth or feats.chunk_length)
        signal_p = _noise_p(window_values, feats, rows, config)
    return _posteriors(episode_values, frames, config, signal_p=signal_p,
                       anchor=ANCHORS.get(drive), fraction=FRACTIONS.get(drive))


def _consensus_rows(
    feats: WindowFeatures, rows: Tensor, attribution: _Fit | None, config: TrustConfig,
) -> tuple[npt.NDArray[np.bool_] | None, int]:
    """The rows the behaviour-cloning probe (the second signal) learns the set's consensus
    from, and from how many episodes: those the attribution keeps (P(good) >= 0.5), so that
    wrong labels, which label consistency already sees, do not make the consensus the good
    episodes are measured against (4 experts among 8 random-label episodes: 3 experts cut
    without this). ``None`` (every row) when the attribution does not drive the trust, the
    second signal is another, or the attribution keeps every episode (or none)."""
    n_episodes = len(feats.episodes)
    if attribution is None or config.second_signal != 'bc_loss':
        return None, n_episodes
    keep = attribution[1] >= 0.5
    if keep.all() or not keep.any():
        return None, n_episodes
    out: npt.NDArray[np.bool_] = keep[feats.episode[rows].numpy()]
    return out, int(keep.sum())


def _probe_errors(
    feats: WindowFeatures, rows: Tensor, fold_of_row: npt.NDArray[np.int64],
    config: TrustConfig, *, consensus: npt.NDArray[np.bool_] | None = None,
) -> tuple[Tensor, Tensor]:
    """The second signal and the inverse-dynamics baseline: out-of-fold probe errors (NaN,
    and left out of the trust file, when neither the trust nor ``baselines`` needs them). The
    behaviour-cloning probe learns only from the ``consensus`` rows (``_consensus_rows``)."""
    nan = torch.full((len(rows),), float('nan'))
    bc_err = inv_err = nan
    if config.baselines or 'bc_loss' in (config.second_signal, config.signal):
        bc_err = _oof_regression(feats.h, feats.action, _chunk_mask(feats), rows, fold_of_row,
                                 config, seed=config.seed + 500, device=feats.device,
                                 learn_from=consensus)
    if config.baselines or config.signal == 'inverse_dynamics':
        inv_x = torch.cat([feats.state, feats.next_state_delta], dim=1)
        inv_err = _oof_regression(inv_x, feats.first_action, feats.dim_mask, rows,
                                  fold_of_row, config, seed=config.seed + 900,
                                  device=feats.device)
    return bc_err, inv_err


@dataclass
class _Posteriors:
    """Every episode signal and the P(good) of the driving signal (``a``) and of the second
    one (``b``: ``second_signal``, or ``bc_loss`` for the diagnostics when that is none)."""

    drive: str
    per_episode: dict[str, npt.NDArray[np.float64]]
    mix_a: Calibration
    p_a: npt.NDArray[np.float64]
    pf_a: list[npt.NDArray[np.float64]]
    mix_b: Calibration
    p_b: npt.NDArray[np.float64]
    pf_b: list[npt.NDArray[np.float64]]
    second: str
    use_second: bool
    p_good: npt.NDArray[np.float64]


def _signal_posteriors(
    feats: WindowFeatures, rows: Tensor, score: Tensor, bc_err: Tensor, inv_err: Tensor,
    progress: tuple[Tensor, Tensor], config: TrustConfig, *, consensus_episodes: int,
    drive_fit: _Fit | None = None,
) -> _Posteriors:
    """Per-episode signals, and episode and frame P(good) of the driving (``drive_fit`` when
    already fitted) and the second signal (``progress``: ``progress.progress_rates`` of every
    window; an episode's progress is its moving windows' mean; ``bc_loss`` only when its probe
    learned from at least ``CONSENSUS_MIN_EPISODES`` episodes)."""
    rate, moving = progress[0][rows], progress[1][rows]
    width = config.smooth or feats.chunk_length
    attribution = _episode_mean(score, feats, rows)
    bc = _episode_mean(-bc_err, feats, rows)
    inv = _episode_mean(-inv_err, feats, rows)
    smooth = _smoothness(feats)
    lengths_ep = np.asarray([-float(e.length) for e in feats.episodes])
    per_window = {'attribution': score, 'bc_loss': -bc_err, 'progress': rate,
                  'inverse_dynamics': -inv_err}
    per_episode = {'attribution': attribution, 'bc_loss': bc, 'inverse_dynamics': inv,
                   'progress': episode_progress(rate, moving, feats.episode[rows],
                                                len(feats.episodes)),
                   'length': lengths_ep,
                   'smoothness': smooth}
    drive = config.signal  # the baselines can drive the trust too (benchmark arms)
    second = 'bc_loss' if config.second_signal == 'none' else config.second_signal
    use_second = config.second_signal != 'none' and drive != second and (
        second != 'bc_loss' or consensus_episodes >= CONSENSUS_MIN_EPISODES)
    mix_a, p_a, pf_a = drive_fit or _drive_fit(drive, per_window.get(drive), per_episode[drive],
                                               feats, rows, config)
    values = per_window[second]
    # progress is computed from the states, not learnt: no scorer that learned nothing to
    # guard against, and its windows vary along the way by design (the test refused a
    # distinct group of slow and hesitant operators at p 0.97)
    learnt = use_second and second != 'progress'
    p_second = _noise_p(values, feats, rows, config) if learnt else float('nan')
    mix_b, p_b, pf_b = _posteriors(per_episode[second], _frame_series(values, feats, rows, width),
                                   config, anchor=ANCHORS.get(second), signal_p=p_second,
                                   fraction=FRACTIONS.get(second))
    p_good = p_a * p_b if use_second else p_a
    return _Posteriors(drive, per_episode, mix_a, p_a, pf_a, mix_b, p_b, pf_b, second,
                       use_second, p_good)


def _episode_trusts(
    feats: WindowFeatures, post: _Posteriors, folds: npt.NDArray[np.int64],
    digests: Sequence[str], config: TrustConfig,
) -> tuple[list[list[EpisodeTrust]], list[str], list[int]]:
    """Each dataset's episode trusts, and every episode's source and length in that order."""
    lo = config.w_min
    drive, sig = post.drive, post.per_episode
    per_dataset: list[list[EpisodeTrust]] = [[] for _ in digests]
    sources, lengths = [], []
    for e, info in enumerate(feats.episodes):
        frame_p = post.pf_a[e] * post.pf_b[e] if post.use_second else post.pf_a[e]
        signals = {
            'attribution': _num(sig['attribution'][e]), 'length': -float(info.length),
            'smoothness': _num(sig['smoothness'][e]), 'progress': _num(sig['progress'][e]),
            f'p_{drive}': float(post.p_a[e]),
            **{name: _num(sig[name][e]) for name in ('bc_loss', 'inverse_dynamics')
               if np.isfinite(sig[name]).any()},  # probes that ran
        }
        if np.isfinite(sig[post.second]).any():
            signals[f'p_{post.second}'] = float(post.p_b[e])
        per_dataset[info.dataset].append(EpisodeTrust(
            dataset_hash=digests[info.dataset], episode_id=info.episode_id,
            trust=float(lo + (1 - lo) * post.p_good[e]), score=_num(sig[drive][e]),
            fold=-1 if config.in_sample else int(folds[e]),
            frame_trust=np.clip(lo + (1 - lo) * frame_p, lo, 1.0), signals=signals,
        ))
    order = [(d, ep) for d in range(len(digests)) for ep in per_dataset[d]]
    info_by = {(i.dataset, i.episode_id): i for i in feats.episodes}
    for d, ep in order:
        sources.append(info_by[(d, ep.episode_id)].source)
        lengths.append(info_by[(d, ep.episode_id)].length)
    return per_dataset, sources, lengths


def _num(x: float) -> float:
    return float(x) if np.isfinite(x) else 0.0


def _chunk_mask(feats: WindowFeatures) -> Tensor:
    return feats.chunk_mask.bool()


def _smoothness(feats: WindowFeatures) -> npt.NDArray[np.float64]:
    """Minus the mean squared change of consecutive recorded actions per episode."""
    out = np.zeros(len(feats.episodes))
    table = feats.action_table.numpy()
    for e, info in enumerate(feats.episodes):
        a = table[info.offset: info.offset + info.length]
        out[e] = -float(np.mean(np.sum(np.diff(a, axis=0) ** 2, axis=1))) if len(a) > 1 else 0.0
    return out


def signal_aurocs(
    trust: TrustFile, sources: Sequence[str], lengths: Sequence[int], *,
    length_controlled: bool = False,
) -> dict[str, dict[str, float]]:
    """``{signal: {source: AUROC(expert vs source)}}`` (higher signal = more trusted)."""
    src = np.asarray(sources)
    good = src == EXPERT
    if not good.any():
        return {}
    table: dict[str, dict[str, float]] = {}
    for name in SIGNALS:
        if length_controlled and name == 'trust':  # bounded and saturated: control the scores
            continue
        vals = np.asarray([ep.trust if name == 'trust' else ep.signals.get(name, np.nan)
                           for ep in trust.episodes], np.float64)
        if not np.isfinite(vals).any():
            continue
        row = {}
        for s in sorted(set(sources) - {EXPERT, ''}):
            bad = src == s
            row[s] = (auroc_length_controlled(vals, lengths, good, bad) if length_controlled
                      else auroc(vals[good], vals[bad]))
        table[name] = row
    return table
