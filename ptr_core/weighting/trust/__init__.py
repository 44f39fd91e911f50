"""Trust scored before training, the wing of the method that scores demonstrations before
training: ``config`` (``TrustConfig``), ``features`` (frozen-encoder window features),
``scorer`` (the consequence scorer), ``crossfit`` (folds, rounds, ``score_datasets``),
``calibrate`` (the per-severity mixture split and the no-signal test) and ``weighter`` (applies a
trust file while training). The file format is ``bag_tools.trust`` (export and report read it).

A cross-fitted consequence scorer on a frozen base encoder:

``score_datasets(datasets, init=BASE, config=TrustConfig())`` extracts every window's frozen
context, its recorded (normalized, masked) action chunk and its per-step consequence, fits ``K``
scorer copies over episode folds, scores each episode with the copy that never trained on it, and
maps the per-episode out-of-fold score to a trust in ``[w_min, 1]`` by a calibrated two-component
mixture. The result is a ``bag_tools.trust.TrustFile`` (``ptr score`` writes it; ``ptr train
--trust`` reads it). Method and measurements: docs/ptr.md, "Trust scored before training".
"""

from ptr_core.weighting.trust.config import TrustConfig
from ptr_core.weighting.trust.crossfit import ScoreResult, score_datasets

__all__ = ['ScoreResult', 'TrustConfig', 'score_datasets']
