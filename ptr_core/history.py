"""The observation history the policy reads: the last ``To`` control-tick snapshots.

Each control tick samples the newest state vector and camera frames into a ring of length
``To`` (the checkpoint's observation horizon). Until ``To`` ticks have passed the oldest
snapshot is repeated, as the training windows repeat an episode's first frame. The policy node
and the simulator evaluation (one history per simulator) both keep theirs here.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = ['ObservationHistory', 'Snapshot']


@dataclass(frozen=True)
class Snapshot:
    state: npt.NDArray[np.float32]  # [Ds]
    images: dict[str, npt.NDArray[Any]]  # role -> [H, W, C]
    received: float  # monotonic receipt time of the newest message in it


class ObservationHistory:
    def __init__(self, horizon: int) -> None:
        if horizon < 1:
            msg = f'observation horizon must be >= 1, got {horizon}'
            raise PtrError(msg)
        self.horizon = horizon
        self._ring: deque[Snapshot] = deque(maxlen=horizon)
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._ring.clear()

    def push(
        self, state: npt.ArrayLike, images: Mapping[str, npt.NDArray[Any]], received: float
    ) -> None:
        snap = Snapshot(np.asarray(state, dtype=np.float32).copy(),
                        {r: np.array(a, copy=True) for r, a in images.items()}, received)
        with self._lock:
            self._ring.append(snap)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ring)

    def arrays(self) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[Any]], float]:
        """``state [To, Ds]``, ``images {role: [To, H, W, C]}``, newest receipt time."""
        with self._lock:
            snaps = list(self._ring)
        if not snaps:
            msg = 'observation history is empty'
            raise PtrError(msg)
        snaps = [snaps[0]] * (self.horizon - len(snaps)) + snaps
        state = np.stack([s.state for s in snaps])
        images = {r: np.stack([s.images[r] for s in snaps]) for r in snaps[-1].images}
        return state, images, snaps[-1].received
