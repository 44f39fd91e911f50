"""Posterior-Transition Reweighting, the paper's online method: the weighter named ``ptr``.

One wing, by role: ``weighter`` (``PTRWeighter``: binding, the step, after-step commits),
``target`` (the EMA encoder's target pass), ``candidates`` (what each sample's own future is
scored against), ``scorer`` (the transition scorer and the formulas of PTR_SPEC.md), ``queue``
(the target queue), ``controller`` (the adaptive temperature and hard-negative share),
``diagnostics`` (step metrics, bound warnings), ``distributed`` (DDP gathers), ``config``
(``PTRConfig``), ``report`` (``ptr weights``: which demonstrations PTR trusts).
"""

from __future__ import annotations

from ptr_core.weighting.ptr.config import PAPER_DEFAULTS, PTRConfig
from ptr_core.weighting.ptr.weighter import FUTURE_PREFIX, PTRWeighter, ScoredBatch

__all__ = ['FUTURE_PREFIX', 'PAPER_DEFAULTS', 'PTRConfig', 'PTRWeighter', 'ScoredBatch']
