"""Score every sample of a dataset with a trained PTR scorer: which demonstrations PTR trusts.

``score_dataset`` rebuilds the policy (raw weights: the scorer was trained on them) and the PTR
weighter from a checkpoint, runs every window of the given datasets through ``PTRWeighter.score``
in shuffled batches of the training batch size (the posterior depends on the batch it competes
in), and turns the scores into weights the way training does, with the checkpoint's β:

- ``center``: T minus the mean T over all scored samples (the batch mean in training);
- ``smoothing: episode``: each sample uses its episode's mean T (the fixed point of the per-episode
  EMA);
- ``w = 1 + α (clip(exp(T'/β), w_min, w_max) − 1)``, ``w = 1`` without a future.

``summarize`` aggregates per episode, robot, source tag and dataset.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from ptr_core import batch as K
from ptr_core.checkpoint import Checkpoint, load_checkpoint
from ptr_core.configuration import DatasetSpec
from ptr_core.data import SOURCE_TAG, Vocabulary, WindowDataset, build_data
from ptr_core.errors import CheckpointError
from ptr_core.policies.policy import ActionPolicy, build_policy
from ptr_core.weighting.ptr.scorer import ptr_weight
from ptr_core.weighting.ptr.weighter import PTRWeighter

__all__ = ['SampleScores', 'score_dataset', 'summarize']


@dataclass
class SampleScores:
    """One row per scored window."""

    episode: list[str]  # episode id
    robot: list[str]
    source: list[str]  # the episode's ``ptr.source`` tag ('' when untagged)
    dataset: npt.NDArray[np.int64]
    frame: npt.NDArray[np.int64]
    score: npt.NDArray[np.float64]  # T
    weight: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    at_min: npt.NDArray[np.bool_]
    at_max: npt.NDArray[np.bool_]
    meta: dict[str, Any]  # checkpoint, step, score mode, β, bounds, ...

    def __len__(self) -> int:
        return len(self.score)


def score_dataset(
    checkpoint: str | Path,
    datasets: Sequence[str | Path],
    *,
    batch_size: int | None = None,
    device: str = 'cpu',
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> SampleScores:
    """T and the weight of every window of ``datasets`` under ``checkpoint``'s PTR scorer."""
    dev = torch.device(device)
    ckpt, policy, weighter = _load_scorer(checkpoint, dev)
    cfg = ckpt.config
    data_cfg = dataclasses.replace(
        cfg.data, datasets=tuple(DatasetSpec(str(p)) for p in datasets), val_fraction=0.0,
        image_shift=0, trust=None,  # the training's trust file is not this pass's
    )
    bundle = build_data(data_cfg, chunk_length=cfg.policy.chunk_length, seed=seed,
                        preprocessor=ckpt.preprocessor, vocab=Vocabulary.from_json(ckpt.vocab),
                        robots=ckpt.robots)
    windows = bundle.train
    b = min(batch_size or cfg.batch_size, len(windows))
    rows = _score_windows(windows, policy, weighter, int(ckpt.step), b, dev, seed, progress)
    score, valid = rows['score'], rows['valid'].astype(bool)
    episodes = [windows.refs[int(r)].episode for r in rows['refs']]
    c = weighter.config
    beta = float(weighter.controller.beta)
    ep_ids = [ep.id for ep in episodes]
    effective, weight = _effective_weights(ep_ids, score, valid, weighter, beta)
    log_lo = math.log(c.w_min) if c.w_min > 0 else -math.inf
    return SampleScores(
        episode=ep_ids,
        robot=[ep.robot for ep in episodes],
        source=[str(ep.tags.get(SOURCE_TAG, '')) for ep in episodes],
        dataset=rows['dataset'], frame=rows['frame'], score=score, weight=weight, valid=valid,
        at_min=valid & (effective / beta <= log_lo),
        at_max=valid & (effective / beta >= math.log(c.w_max)),
        meta={
            'checkpoint': str(ckpt.path), 'step': ckpt.step, 'score_mode': c.score_mode,
            'beta': beta, 'tau': float(weighter.controller.tau), 'w_min': c.w_min,
            'w_max': c.w_max, 'alpha': c.alpha, 'center': c.center, 'smoothing': c.smoothing,
            'batch_size': b, 'datasets': [str(p) for p in datasets],
        },
    )


def _load_scorer(
    checkpoint: str | Path, dev: torch.device,
) -> tuple[Checkpoint, ActionPolicy, PTRWeighter]:
    """The checkpoint, its policy and its PTR weighter, loaded and in eval mode on ``dev``."""
    ckpt = load_checkpoint(checkpoint)
    cfg = ckpt.config
    if cfg.weighter.name != 'ptr' or ckpt.weighter is None:
        msg = (f'{ckpt.path}: trained with weighter {cfg.weighter.name!r}; ptr weights needs a '
               f'checkpoint trained with weighter.name: ptr')
        raise CheckpointError(msg)
    policy = build_policy(cfg.policy, ckpt.preprocessor)
    policy.load_state_dict(ckpt.model)
    weighter = PTRWeighter.from_options(cfg.weighter.options)
    weighter.bind(policy)
    try:
        weighter.load_state_dict(ckpt.weighter)
    except RuntimeError as err:
        msg = f'{ckpt.path}: weighter state does not fit: {str(err).splitlines()[0]}'
        raise CheckpointError(msg) from err
    policy.to(dev).eval()
    weighter.to(dev).eval()
    return ckpt, policy, weighter


def _score_windows(
    windows: WindowDataset,
    policy: ActionPolicy,
    weighter: PTRWeighter,
    step: int,
    b: int,
    dev: torch.device,
    seed: int,
    progress: Callable[[int, int], None] | None,
) -> dict[str, npt.NDArray[Any]]:
    """T, validity, frame, dataset and episode ref of every window, scored in shuffled batches
    of ``b`` (the last batch completed with repeats; each window keeps its first score)."""
    n = len(windows)
    order = np.random.default_rng(seed).permutation(n)
    if n % b:
        order = np.concatenate([order, order[: b - n % b]])  # complete the last batch
    score = np.zeros(n)
    valid = np.zeros(n, bool)
    frame = np.zeros(n, np.int64)
    dataset = np.zeros(n, np.int64)
    refs = np.zeros(n, np.int64)
    done = np.zeros(n, bool)
    with torch.no_grad():
        for start in range(0, len(order), b):
            idx = order[start: start + b]
            samples = [windows[windows.flat_index(int(i))] for i in idx]
            batch = {k: torch.stack([s[k] for s in samples]).to(dev) for k in samples[0]}
            out = policy.forward_train(batch)
            scored = weighter.score(batch, out, step=step)
            keep = ~done[idx]
            rows = idx[keep]
            score[rows] = scored.score.double().cpu().numpy()[keep]
            valid[rows] = scored.valid.cpu().numpy()[keep]
            frame[rows] = batch[K.FRAME_INDEX].cpu().numpy()[keep]
            dataset[rows] = batch[K.DATASET_ID].cpu().numpy()[keep]
            refs[rows] = batch[K.EPISODE_ID].cpu().numpy()[keep]
            done[rows] = True
            if progress is not None:
                progress(int(done.sum()), n)
    return {'score': score, 'valid': valid, 'frame': frame, 'dataset': dataset, 'refs': refs}


def _effective_weights(
    ep_ids: Sequence[str],
    score: npt.NDArray[np.float64],
    valid: npt.NDArray[np.bool_],
    weighter: PTRWeighter,
    beta: float,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The T each weight uses (episode-smoothed and centred as configured) and the weights."""
    c = weighter.config
    effective = score.copy()
    if c.smoothing == 'episode':
        sums: dict[str, list[float]] = defaultdict(list)
        for e, t, v in zip(ep_ids, score, valid):
            if v:
                sums[e].append(float(t))
        means = {e: float(np.mean(ts)) for e, ts in sums.items()}
        effective = np.array([means.get(e, t) for e, t in zip(ep_ids, score)])
    if c.center and valid.any():
        effective = effective - effective[valid].mean()
    weight = ptr_weight(torch.from_numpy(effective), beta, c.w_min, c.w_max, c.alpha).numpy()
    weight = np.where(valid, weight, 1.0)
    return effective, weight


def _group(keys: Sequence[str], s: SampleScores) -> list[dict[str, Any]]:
    rows: dict[str, list[int]] = defaultdict(list)
    for row, k in enumerate(keys):
        rows[k].append(row)
    out = []
    for key in sorted(rows):
        i = np.asarray(rows[key], dtype=np.int64)
        v = s.valid[i]
        out.append({
            'name': key,
            'samples': int(i.size),
            'valid': int(v.sum()),
            'w_mean': float(s.weight[i].mean()),
            'w_min': float(s.weight[i].min()),
            'w_max': float(s.weight[i].max()),
            'T_mean': float(s.score[i][v].mean()) if v.any() else 0.0,
            'at_min_share': float(s.at_min[i].sum() / max(v.sum(), 1)),
            'at_max_share': float(s.at_max[i].sum() / max(v.sum(), 1)),
            'loss_share': float(s.weight[i].sum() / s.weight.sum()),
        })
    return out


def summarize(s: SampleScores) -> dict[str, Any]:
    """Per-episode, per-robot, per-source and per-dataset summaries plus the totals."""
    total = _group(['all'] * len(s), s)[0]
    w = s.weight
    total['ess_ratio'] = float(w.sum() ** 2 / (w * w).sum() / len(w))
    ep_meta = {e: (r, src) for e, r, src in zip(s.episode, s.robot, s.source)}
    episodes = _group(s.episode, s)
    for row in episodes:
        row['robot'], row['source'] = ep_meta[row['name']]
    return {
        'meta': s.meta,
        'overall': total,
        'robots': _group(s.robot, s),
        'sources': _group(s.source, s) if any(s.source) else [],
        'datasets': _group([str(d) for d in s.dataset], s),
        'episodes': episodes,
    }


def weights_of(scores: SampleScores, source: str) -> Tensor:
    """The weights of one source tag (for tests and notebooks)."""
    pick = [i for i, src in enumerate(scores.source) if src == source]
    return torch.from_numpy(scores.weight[pick])
