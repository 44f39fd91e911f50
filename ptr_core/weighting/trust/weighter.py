"""``weighter.name: trust``: apply a trust file (``ptr score``) from step 0.

Options (``weighter.options``)::

    file: runs/mixed.trust.json   # the trust file (``ptr train --trust FILE`` sets it)
    apply: sampling               # sampling: episodes are drawn in proportion to their trust
                                  #   (times their window count), every sample weighs 1 — the
                                  #   step costs exactly a uniform step; loss: uniform draws,
                                  #   per-sample loss weights = trust
    level: episode                # episode: the episode's trust for each of its windows;
                                  # frame: min(episode trust, frame trust) — partial bad stretches

The trainer calls ``bind_data(bundle, dataset_paths)`` once; the weighter reads the file,
refuses it when a dataset's content hash is not in it (``bag_tools.trust``), warns (naming the
file) when it drops more than half of the training episodes (``bag_tools.trust.drop_warning``),
and builds one trust value per window. ``window_weights()`` hands the sampler its per-dataset
draw weights (``apply: sampling``); ``forward`` returns the loss weights (``apply: loss``) or
ones.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from bag_tools.dataset import Dataset
from bag_tools.errors import BagToolsError
from bag_tools.trust import drop_warning, read_trust
from ptr_core import batch as K
from ptr_core.errors import ConfigError, PtrError
from ptr_core.weighting.base import PolicyOutput, SampleWeighter, WeightOutput

__all__ = ['TrustOptions', 'TrustWeighter']

log = logging.getLogger(__name__)

APPLY = ('sampling', 'loss')
LEVELS = ('episode', 'frame')


@dataclass(frozen=True)
class TrustOptions:
    file: str = ''
    apply: str = 'sampling'
    level: str = 'episode'

    def __post_init__(self) -> None:
        if not self.file:
            msg = ('weighter.options.file: the trust weighter needs a trust file '
                   '(ptr train --trust FILE; write one with ptr score)')
            raise ConfigError(msg)
        if self.apply not in APPLY:
            msg = f'weighter.options.apply: {self.apply!r} is not {" | ".join(APPLY)}'
            raise ConfigError(msg)
        if self.level not in LEVELS:
            msg = f'weighter.options.level: {self.level!r} is not {" | ".join(LEVELS)}'
            raise ConfigError(msg)


class TrustWeighter(SampleWeighter):
    """Per-episode (or per-frame) trust from a file, applied by sampling or as loss weights."""

    name = 'trust'

    def __init__(self, options: TrustOptions) -> None:
        super().__init__()
        self.options = options
        self._by_ref: list[npt.NDArray[np.float64]] = []  # per episode ref: trust per frame
        self._windows: list[npt.NDArray[np.float64]] | None = None
        self._lookup: Tensor | None = None  # [refs, max_T] per-frame trust (loss mode)
        self._sources: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrustWeighter:
        allowed = {'file', 'apply', 'level'}
        unknown = sorted(set(options) - allowed)
        if unknown:
            msg = (f'weighter.options: unknown key {unknown[0]!r} for the trust weighter '
                   f'(allowed: {", ".join(sorted(allowed))})')
            raise ConfigError(msg)
        return cls(TrustOptions(**{k: str(v) for k, v in options.items()}))

    def set_group_names(self, *, robots: Sequence[str], sources: Sequence[str]) -> None:
        self._sources = tuple(sources)

    def bind_data(self, bundle: Any, dataset_paths: Sequence[str]) -> None:
        """Read the trust file for the run's datasets and map it onto every window."""
        path = Path(self.options.file)
        try:
            trust = read_trust(path)
            tables = [trust.for_dataset(Dataset.open(p)) for p in dataset_paths]
        except BagToolsError as err:
            raise PtrError(str(err)) from err
        by_ref, values = [], []
        for ref in bundle.train.refs:
            value, frames = tables[ref.dataset_id][ref.episode.id]
            values.append(value)
            if self.options.level == 'frame':
                by_ref.append(np.minimum(value, np.asarray(frames, np.float64)))
            else:
                by_ref.append(np.full(ref.episode.length, value, np.float64))
        dropped = drop_warning(values, [len(x) for x in by_ref], where=str(path))
        if dropped is not None:  # the run goes on: the user may mean it, but must hear it
            log.warning('%s', dropped)
        self._by_ref = by_ref
        self._windows = [
            np.asarray([by_ref[int(r)][int(t)] for r, t in w], np.float64) if len(w)
            else np.zeros(0) for w in bundle.train.windows
        ]
        longest = max((len(x) for x in by_ref), default=1)
        table = np.ones((max(1, len(by_ref)), longest), np.float32)
        for i, x in enumerate(by_ref):
            table[i, : len(x)] = x
        self._lookup = torch.from_numpy(table)
        share = [float(w.sum() / max(len(w), 1)) for w in self._windows]
        log.info('trust %s (%s, %s): mean window trust per dataset %s', path,
                 self.options.apply, self.options.level, [f'{s:.3f}' for s in share])

    def window_weights(self) -> list[npt.NDArray[np.float64]] | None:
        """Per-dataset draw weight of every training window (``apply: sampling``), else None."""
        if self.options.apply != 'sampling':
            return None
        if self._windows is None:
            msg = 'trust weighter: bind_data was not called (the trainer does this)'
            raise PtrError(msg)
        return self._windows

    def forward(  # type: ignore[override]
        self, batch: dict[str, Tensor], out: PolicyOutput, step: int
    ) -> WeightOutput:
        zero = out.loss.new_zeros(())
        if self.options.apply == 'sampling' or self._lookup is None:
            return WeightOutput(weights=torch.ones_like(out.loss).detach(), aux_loss=zero)
        lookup = self._lookup.to(out.loss.device)
        ep = batch[K.EPISODE_ID].long().clamp(0, lookup.shape[0] - 1)
        fr = batch[K.FRAME_INDEX].long().clamp(0, lookup.shape[1] - 1)
        w = lookup[ep, fr].to(out.loss.dtype)
        return WeightOutput(weights=w.detach(), aux_loss=zero,
                            metrics={'w_mean': float(w.mean())})
