"""``ptr benchmark``: does PTR beat uniform post-training on mixed-quality data? Measured end to
end through the real pipeline, on Meta-World.

Stages (each resumable: a finished stage or cell is skipped when the output folder is reused):

1. **record** — per seed (each seed its own goals) and target task, the configured source mix
   (``mix``) and, optionally, an expert-only control set (``control_mix``); expert
   demonstrations of the other ``pretrain_tasks``. Real MCAP bags, both recording setups
   (``record-sim``'s code), to a fixed horizon unless ``fixed_horizon: false``.
2. **ingest** — ``bag_tools.ingest`` with the setups' robot profiles (state-only copies of them
   unless ``images``): ``data/seed<s>/pretrain``, ``data/seed<s>/<task>/mix``,
   ``data/seed<s>/<task>/control``.
3. **pretrain** — one base policy per head and seed, uniform weights, on that seed's
   pretraining recording.
4. **post-train + evaluate** — for every task x head x method x seed: ``train(init=base)`` on the
   task's mixed data (same base, model, steps and seed for every method), then closed-loop
   success in the simulator on held-out goals of the ``split`` (``dev`` to choose, ``test`` to
   report; ``eval_episodes`` per cell, split over the setups; the same goals for every method
   of a seed). The control set runs
   ``control_methods`` on ``control_heads``.
5. **report** — ``results.json``, ``results.md`` (success mean ± std over seeds, per-source mean
   weights, identification accuracy, step cost) and plots: ``success.png``,
   ``weights_by_source.png``, ``diagnostics.png``.

The package, by role: ``cells`` (the grid and the files beside a cell), ``data`` (stages 1-2),
``stages`` (3-4 and ``run_benchmark``), ``cache`` (what a resumed run may reuse), ``trust_arms``
(scored and oracle trust), ``baselines`` (the untrained checks' trust arms), ``statistics``
and ``report`` (stage 5).
"""

from __future__ import annotations

from ptr_sim.benchmark.cache import cell_fingerprint, reusable_result
from ptr_sim.benchmark.cells import FINGERPRINT, Cell, cells
from ptr_sim.benchmark.report import markdown, write_report
from ptr_sim.benchmark.stages import run_benchmark
from ptr_sim.benchmark.statistics import (
    clustered_interval,
    collect_results,
    contrasts,
    paired_differences,
    summarize,
    trust_summary,
)

__all__ = [
    'FINGERPRINT',
    'Cell',
    'cell_fingerprint',
    'cells',
    'clustered_interval',
    'collect_results',
    'contrasts',
    'markdown',
    'paired_differences',
    'reusable_result',
    'run_benchmark',
    'summarize',
    'trust_summary',
    'write_report',
]
