"""A trust file (``ptr score``) mapped onto a run's training windows: what ``build_data`` does
when ``data.trust`` is set.

Each window ``(episode ref, t)`` gets its episode's trust (``data.trust_level: episode``) or
``min(episode trust, frame trust at t)`` (``frame``: partial bad stretches). The file is refused
when a dataset's content hash is not in it (``bag_tools.trust``); a trust that drops more than
half of the training episodes is said in one WARNING naming the file
(``bag_tools.trust.drop_warning``): the run goes on, since the user may mean it; so is the
frame level on a trust whose second signal is the behaviour-cloning loss (its frame series
follows the phase of the motion, docs/ptr.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bag_tools.dataset import Dataset
from bag_tools.errors import BagToolsError
from bag_tools.trust import drop_warning, read_trust
from ptr_core.errors import PtrError

__all__ = ['window_trust']

log = logging.getLogger(__name__)


def window_trust(
    file: str | Path, dataset_paths: Sequence[str], refs: Sequence[Any],
    windows: Sequence[npt.NDArray[np.int64]], *, level: str = 'episode',
) -> list[npt.NDArray[np.float64]]:
    """One trust per window of ``windows`` (per dataset ``[N_d, 2]`` of (ref, t)), from the
    trust file ``file`` for the datasets at ``dataset_paths``; ``refs`` are the episodes the
    windows index (``ptr_core.data``'s episode refs)."""
    path = Path(file)
    try:
        trust = read_trust(path)
        tables = [trust.for_dataset(Dataset.open(p)) for p in dataset_paths]
    except BagToolsError as err:
        raise PtrError(str(err)) from err
    if level == 'frame' and 'bc_loss' in str(trust.scorer.get('combine', '')):
        log.warning('%s: data.trust_level frame with a trust whose second signal is bc_loss: a '
                    "frame's behaviour-cloning loss tracks the phase, not the operator, so the "
                    "experts' approach frames lose trust; use data.trust_level episode", path)
    by_ref, values = [], []
    for ref in refs:
        value, frames = tables[ref.dataset_id][ref.episode.id]
        values.append(value)
        if level == 'frame':
            by_ref.append(np.minimum(value, np.asarray(frames, np.float64)))
        else:
            by_ref.append(np.full(ref.episode.length, value, np.float64))
    dropped = drop_warning(values, [len(x) for x in by_ref], where=str(path))
    if dropped is not None:
        log.warning('%s', dropped)
    out = [np.asarray([by_ref[int(r)][int(t)] for r, t in w], np.float64) if len(w)
           else np.zeros(0) for w in windows]
    share = [float(w.sum() / max(len(w), 1)) for w in out]
    log.info('trust %s (%s): mean window trust per dataset %s', path, level,
             [f'{s:.3f}' for s in share])
    return out
