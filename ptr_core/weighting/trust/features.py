"""Per-window inputs of the trust scorer, read once through the base policy's FROZEN encoder.

For every window ``t`` of every episode (the training loader's windows, no validation split):

- ``h [N, Dh]``: the base policy's context (encoder output), no gradient;
- ``action [N, L·Da]``: the recorded chunk ``a[t .. t+L-1]``, normalized, padding and absent
  action dims zeroed (the clean action encoding: no FiLM, no noise, no denoiser);
- ``consequence [N, Dy]``: what happened next — per-step normalized state changes
  ``s[t+k] - s[t+k-1]`` for ``k = 1..L`` (``consequence: steps``) and the change of the encoder's
  target feature ``g(o[t+Δ]) - g(o[t])``; standardized per dimension over the whole pass;
- ``state [N, Ds]``: the current normalized state (nearest-state negatives).

``action_table`` holds every episode's normalized actions end to end (zero rows after each
episode), so a chunk at any ``t'`` of the same episode is a gather (time-shifted negatives).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from bag_tools.dataset import Dataset
from ptr_core import batch as K
from ptr_core.data import (
    SOURCE_TAG,
    WindowDataset,
    WindowIndex,
    build_vocabulary,
    index_windows,
)
from ptr_core.layout import UnifiedLayout
from ptr_core.policies.policy import ActionPolicy
from ptr_core.preprocess import Preprocessor

__all__ = ['EpisodeInfo', 'WindowFeatures', 'extract_features']

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EpisodeInfo:
    dataset: int  # index into the datasets given
    episode_id: str
    length: int
    source: str  # the ``ptr.source`` tag ('' when untagged)
    robot: str
    offset: int  # first row of this episode in ``WindowFeatures.action_table``


@dataclass
class WindowFeatures:
    """Everything the scorer copies train and score on (float32 CPU tensors; ``device`` is
    where the scorer computes: each batch moves there, the tables stay on the CPU)."""

    h: Tensor  # [N, Dh]
    action: Tensor  # [N, L*Da]
    step_mask: Tensor  # [N, L] bool: chunk steps inside the episode
    dim_mask: Tensor  # [N, Da] bool: the robot's action dims
    consequence: Tensor  # [N, Dy]
    state: Tensor  # [N, Ds]
    next_state_delta: Tensor  # [N, Ds]: s[t+1] - s[t] (inverse-dynamics baseline)
    first_action: Tensor  # [N, Da]: a[t] (inverse-dynamics baseline)
    episode: Tensor  # [N] long: index into ``episodes``
    frame: Tensor  # [N] long: t
    has_next: Tensor  # [N] bool: t + 1 is inside the episode (a consequence exists)
    action_table: Tensor  # [sum(T_e + L), Da]
    episodes: list[EpisodeInfo]
    chunk_length: int
    device: torch.device = field(default_factory=lambda: torch.device('cpu'))
    # derived once (the scorer's candidate draws read them every step): per window, its
    # episode's length and first ``action_table`` row, and its chunk mask [N, L*Da] (float)
    row_length: Tensor = field(init=False, repr=False)
    row_offset: Tensor = field(init=False, repr=False)
    chunk_mask: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.row_length = torch.as_tensor([e.length for e in self.episodes],
                                          dtype=torch.long)[self.episode]
        self.row_offset = torch.as_tensor([e.offset for e in self.episodes],
                                          dtype=torch.long)[self.episode]
        mask = self.step_mask[:, :, None] & self.dim_mask[:, None, :]
        self.chunk_mask = mask.flatten(1).to(self.action.dtype)

    @property
    def n(self) -> int:
        return int(self.h.shape[0])

    def chunks_at(self, rows: Tensor, frames: Tensor) -> Tensor:
        """Chunks of the episodes of ``rows`` starting at ``frames`` (clamped inside the
        episode), masked like the chunk of each row: ``[*, L*Da]``."""
        start = frames.clamp(min=0).minimum(self.row_length[rows] - 1)
        idx = self.row_offset[rows][..., None] + start[..., None] + torch.arange(
            self.chunk_length)
        return self.action_table[idx].flatten(-2) * self.chunk_mask[rows]


def _standardize(x: Tensor) -> Tensor:
    std = x.std(dim=0, keepdim=True)
    return (x - x.mean(dim=0, keepdim=True)) / std.clamp_min(1e-3 * float(std.max()) + 1e-8)


@torch.no_grad()
def extract_features(
    policy: ActionPolicy,
    preprocessor: Preprocessor,
    datasets: Sequence[Dataset],
    *,
    chunk_length: int,
    delta: int,
    consequence: str = 'steps',
    batch_size: int = 256,
    progress: Progress | None = None,
    device: torch.device | str = 'cpu',
) -> WindowFeatures:
    """One no-grad pass of the frozen encoder over every window of ``datasets`` (the encoder
    runs on ``device``; the features come back to the CPU and remember ``device``)."""
    device = torch.device(device)
    policy.eval()
    policy.to(device)
    vocab = build_vocabulary([ds.manifest for ds in datasets])
    index = index_windows(datasets, preprocessor, vocab, val_fraction=0.0)
    windows = WindowDataset(index.refs, index.train, preprocessor, chunk_length=chunk_length,
                            delta=delta, seed=0)
    layout = preprocessor.layout
    L, da, ds_dim = chunk_length, layout.action_dim, layout.state_dim

    episodes, table, states = _episode_tables(index, preprocessor, L, da, ds_dim)

    rows = np.concatenate([w for w in index.train if len(w)]) if len(windows) else \
        np.zeros((0, 2), np.int64)
    total = len(rows)
    hs, gs, acts, smask, dmask = _encode_windows(policy, windows, layout, rows, consequence,
                                                 batch_size, progress, device)
    ep_idx = torch.as_tensor(rows[:, 0], dtype=torch.long)
    frames = torch.as_tensor(rows[:, 1], dtype=torch.long)
    lengths = np.asarray([e.length for e in episodes])
    cur, nxt, steps = _state_features(states, rows, lengths, L, ds_dim)
    parts = [torch.cat(gs)] if gs else []
    if consequence == 'steps':
        parts.insert(0, torch.from_numpy(steps).flatten(1))
    cons = _standardize(torch.cat(parts, dim=1))
    first = torch.from_numpy(np.stack([table[episodes[r].offset + t] for r, t in rows])) \
        if total else torch.zeros(0, da)
    log.info('trust features: %d windows of %d episodes (h %d, consequence %d, action %d)',
             total, len(episodes), hs[0].shape[1] if hs else 0, cons.shape[1], L * da)
    return WindowFeatures(
        h=torch.cat(hs), action=torch.cat(acts), step_mask=torch.cat(smask),
        dim_mask=torch.cat(dmask), consequence=cons, state=torch.from_numpy(cur).float(),
        next_state_delta=torch.from_numpy(nxt - cur).float(), first_action=first.float(),
        episode=ep_idx, frame=frames, has_next=torch.from_numpy(rows[:, 1] + 1 < lengths[
            rows[:, 0]]), action_table=torch.from_numpy(table), episodes=episodes,
        chunk_length=L, device=device,
    )


def _episode_tables(
    index: WindowIndex, preprocessor: Preprocessor, L: int, da: int, ds_dim: int,
) -> tuple[list[EpisodeInfo], npt.NDArray[np.float32], list[npt.NDArray[np.float32]]]:
    """Every episode's info, the action table (``L`` zero rows after each episode) and its
    normalized states (zero-padded to the layout's state width)."""
    episodes: list[EpisodeInfo] = []
    tables: list[npt.NDArray[np.float32]] = []
    states: list[npt.NDArray[np.float32]] = []
    offset = 0
    for ref in index.refs:
        ep = ref.episode
        n = ep.length
        act = preprocessor.action(np.asarray(ep.action), ref.robot).numpy()
        act = act * np.asarray(ep.action_valid, bool)[:, None]
        tables.append(np.concatenate([act, np.zeros((L, da), np.float32)]))
        st = np.zeros((n, ds_dim), np.float32)
        raw = preprocessor.normalizer.normalize_state(np.asarray(ep.state), ref.robot)
        st[:, : raw.shape[1]] = raw
        states.append(st)
        episodes.append(EpisodeInfo(ref.dataset_id, ep.id, n, str(ep.tags.get(SOURCE_TAG, '')),
                                    ref.robot, offset))
        offset += n + L
    table = np.concatenate(tables) if tables else np.zeros((0, da), np.float32)
    return episodes, table, states


def _encode_windows(
    policy: ActionPolicy, windows: WindowDataset, layout: UnifiedLayout,
    rows: npt.NDArray[np.int64], consequence: str, batch_size: int, progress: Progress | None,
    device: torch.device,
) -> tuple[list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]:
    """Per batch of ``rows``: the context ``h``, the target-feature change (``steps``/``delta``
    consequence only), the masked chunk, the step mask and the robot's action-dim mask."""
    total = len(rows)
    hs, gs, acts, smask, dmask = [], [], [], [], []
    for start in range(0, total, batch_size):
        part = rows[start: start + batch_size]
        samples = [windows.sample(int(r), int(t), 0) for r, t in part]
        batch = {k: torch.stack([s[k] for s in samples]).to(device) for k in samples[0]}
        hs.append(policy.encoder(batch).float().cpu())
        if consequence in ('steps', 'delta'):
            now = policy.encoder.target_feature(batch, 'obs.').float()
            fut = policy.encoder.target_feature(batch, 'future.').float()
            valid = batch[K.FUTURE_VALID].float()[:, None]
            gs.append(((fut - now) * valid).cpu())
        mask = batch[K.ACTION_MASK].cpu()
        acts.append((batch[K.ACTION].cpu() * mask).flatten(1))
        smask.append(mask.any(dim=-1))
        dmask.append(torch.from_numpy(np.stack([layout.action_mask[windows.refs[int(r)].robot]
                                                for r, _ in part])))
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return hs, gs, acts, smask, dmask


def _state_features(
    states: list[npt.NDArray[np.float32]], rows: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64], L: int, ds_dim: int,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[np.float32]]:
    """Per window: the current state, the next state (clamped to the episode) and the ``L``
    per-step state changes after ``t`` (zero past the episode's end)."""
    total = len(rows)
    cur = np.stack([states[r][t] for r, t in rows]) if total else np.zeros((0, ds_dim))
    nxt = np.stack([states[r][min(t + 1, lengths[r] - 1)] for r, t in rows]) if total else cur
    steps = np.zeros((total, L, ds_dim), np.float32)
    for i, (r, t) in enumerate(rows):
        seg = states[r][t: t + L + 1]
        d = np.diff(seg, axis=0)
        steps[i, : len(d)] = d
    return cur, nxt, steps
