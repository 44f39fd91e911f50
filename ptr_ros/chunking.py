"""Action-chunk execution with temporal ensembling, as plain Python (no rclpy).

Time is counted in control ticks. A chunk ``[L, Da]`` predicted from the observation sampled at
tick ``s`` holds the actions for ticks ``s .. s+L-1`` (action ``i`` of a training sample is the
command at ``t + i``). A new chunk is requested every ``execute_steps`` (K) ticks, so each chunk
is executed for its first K actions before the next one takes over; the actions of a chunk that
fall before its arrival (inference latency) are simply never used.

With temporal ensembling (ACT, Zhao et al. 2023) the command at tick ``t`` is the weighted mean
of every live chunk's prediction for ``t``, weight ``exp(-decay * j)`` with ``j = 0`` the oldest
chunk; overlapping chunks blend, so the motion neither pauses nor jumps where chunks meet.
Without it, the newest chunk that covers ``t`` wins.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = ['ChunkEnsembler']


@dataclass(frozen=True)
class _Chunk:
    start: int
    actions: npt.NDArray[np.float64]  # [L, Da]

    @property
    def end(self) -> int:  # first tick not covered
        return self.start + len(self.actions)


class ChunkEnsembler:
    """Holds the live chunks and answers "what to command at tick t" (thread-safe)."""

    def __init__(
        self, *, execute_steps: int, ensemble: bool = True, decay: float = 0.01
    ) -> None:
        if execute_steps < 1:
            msg = f'execute_steps must be >= 1, got {execute_steps}'
            raise PtrError(msg)
        if decay < 0:
            msg = f'ensemble_decay must be >= 0, got {decay}'
            raise PtrError(msg)
        self.execute_steps = execute_steps
        self.ensemble = ensemble
        self.decay = decay
        self._chunks: list[_Chunk] = []
        self._last_request: int | None = None
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget every chunk (after a stop or a stale observation)."""
        with self._lock:
            self._chunks.clear()
            self._last_request = None

    def add(self, chunk: npt.ArrayLike, start: int) -> None:
        actions = np.array(chunk, dtype=np.float64, ndmin=2)
        with self._lock:
            if self._chunks and actions.shape[1] != self._chunks[-1].actions.shape[1]:
                msg = f'chunk has {actions.shape[1]} action dims, earlier chunks have ' \
                      f'{self._chunks[-1].actions.shape[1]}'
                raise PtrError(msg)
            self._chunks.append(_Chunk(start, actions))
            self._chunks.sort(key=lambda c: c.start)

    def should_request(self, tick: int) -> bool:
        """True when a new chunk is due at ``tick`` (first one, or K ticks since the last)."""
        with self._lock:
            return self._last_request is None or tick - self._last_request >= self.execute_steps

    def requested(self, tick: int) -> None:
        with self._lock:
            self._last_request = tick

    def covered_until(self) -> int | None:
        """First tick that no live chunk covers (None without chunks)."""
        with self._lock:
            return max((c.end for c in self._chunks), default=None)

    def plan(self, tick: int, horizon: int) -> npt.NDArray[np.float64] | None:
        """Blended actions for ticks ``tick .. tick+n-1`` (``n <= horizon``; None if none).

        Chunks that end before ``tick`` are dropped. The plan stops at the first tick that no
        chunk covers.
        """
        with self._lock:
            self._chunks = [c for c in self._chunks if c.end > tick]
            rows: list[npt.NDArray[np.float64]] = []
            for t in range(tick, tick + max(horizon, 1)):
                live = [c for c in self._chunks if c.start <= t < c.end]
                if not live:
                    break
                if not self.ensemble:
                    newest = live[-1]
                    rows.append(newest.actions[t - newest.start])
                    continue
                weights = np.exp(-self.decay * np.arange(len(live), dtype=np.float64))
                preds = np.stack([c.actions[t - c.start] for c in live])
                rows.append(weights @ preds / weights.sum())
            return np.stack(rows) if rows else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._chunks)
