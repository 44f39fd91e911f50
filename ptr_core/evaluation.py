"""Offline evaluation of a checkpoint on a dataset: action error per robot, inference time.

For evenly spaced windows of every episode, the policy samples a chunk from the recorded
observation history and is compared with the recorded chunk over the valid steps and the robot's
action dims: MSE in normalized units and MAE / RMSE in physical units. Inference time is measured
per chunk at batch size 1 through ``PolicyRunner.infer`` (preprocessing included), as the node
runs it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from ptr_core import batch as K
from ptr_core.configuration import DatasetSpec
from ptr_core.data import Vocabulary, build_data
from ptr_core.inference import PolicyRunner
from ptr_core.preprocess import Preprocessor

__all__ = ['EvalReport', 'RobotReport', 'evaluate']

log = logging.getLogger(__name__)


@dataclass
class RobotReport:
    robot: str
    windows: int
    mse_normalized: float
    mae: float  # physical units, mean over valid entries
    rmse: float  # physical units
    mae_per_dim: list[float] = field(default_factory=list)


@dataclass
class EvalReport:
    checkpoint: str
    datasets: list[str]
    steps: int
    robots: list[RobotReport]
    infer_ms_median: float
    infer_ms_p90: float
    infer_chunks: int

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def evaluate(
    checkpoint: str | Path,
    datasets: Sequence[str | Path],
    *,
    max_windows: int = 256,
    batch_size: int = 32,
    steps: int | None = None,
    device: str = 'cpu',
    use_ema: bool = True,
    timing_chunks: int = 20,
    seed: int = 0,
) -> EvalReport:
    runner = PolicyRunner.from_checkpoint(checkpoint, device=device, use_ema=use_ema, seed=seed)
    ckpt = runner.checkpoint
    assert ckpt is not None
    data_cfg = dataclasses.replace(
        ckpt.config.data, datasets=tuple(DatasetSpec(str(p)) for p in datasets),
        val_fraction=0.0, image_shift=0, num_workers=0, trust=None,  # every window, unweighted
    )
    bundle = build_data(
        data_cfg, chunk_length=runner.chunk_length, seed=seed, preprocessor=ckpt.preprocessor,
        vocab=Vocabulary.from_json(ckpt.vocab), robots=ckpt.robots,
    )
    windows = bundle.train
    n = min(len(windows), max_windows)
    picks = np.linspace(0, len(windows) - 1, n).astype(np.int64)
    pre = ckpt.preprocessor
    gen = torch.Generator().manual_seed(seed)
    per_robot: dict[str, dict[str, Any]] = {}
    for start in range(0, n, batch_size):
        samples = [windows[windows.flat_index(int(i))] for i in picks[start: start + batch_size]]
        batch = {k: torch.stack([s[k] for s in samples]).to(runner.device) for k in samples[0]}
        with torch.no_grad():
            pred = runner.policy.sample_actions(batch, steps, generator=gen).float().cpu().numpy()
        target = batch[K.ACTION].cpu().numpy()
        mask = batch[K.ACTION_MASK].cpu().numpy()
        for j, rid in enumerate(batch[K.ROBOT_ID].cpu().tolist()):
            robot = pre.layout.robots[rid]
            _accumulate(per_robot.setdefault(robot, _new_accumulator()), pre, robot,
                        pred[j], target[j], mask[j])
    reports = [_robot_report(robot, acc) for robot, acc in sorted(per_robot.items())]
    times = _time_inference(runner, windows, picks[:timing_chunks], steps)
    return EvalReport(
        checkpoint=str(checkpoint), datasets=[str(p) for p in datasets],
        steps=steps or ckpt.config.policy.inference_steps, robots=reports,
        infer_ms_median=float(np.median(times)) if times else 0.0,
        infer_ms_p90=float(np.percentile(times, 90)) if times else 0.0,
        infer_chunks=len(times),
    )


def _new_accumulator() -> dict[str, Any]:
    return {'n': 0, 'sq_n': 0.0, 'cnt': 0.0, 'abs': 0.0, 'sq': 0.0, 'abs_dim': None,
            'cnt_dim': None}


def _accumulate(
    acc: dict[str, Any], pre: Preprocessor, robot: str, pred: npt.NDArray[Any],
    target: npt.NDArray[Any], mask: npt.NDArray[Any],
) -> None:
    """Add one window's errors (normalized, and physical per dim) to ``robot``'s sums."""
    da = pre.normalizer.action_dim(robot)
    m = mask[:, :da]
    p_phys = pre.normalizer.unnormalize_action(pred, robot)
    t_phys = pre.normalizer.unnormalize_action(target, robot)
    acc['n'] += 1
    acc['sq_n'] += float((((pred - target)[:, :da]) ** 2 * m).sum())
    err = np.abs(p_phys - t_phys) * m
    acc['abs'] += float(err.sum())
    acc['sq'] += float((err**2).sum())
    acc['cnt'] += float(m.sum())
    acc['abs_dim'] = err.sum(0) if acc['abs_dim'] is None else acc['abs_dim'] + err.sum(0)
    acc['cnt_dim'] = m.sum(0) if acc['cnt_dim'] is None else acc['cnt_dim'] + m.sum(0)


def _robot_report(robot: str, acc: dict[str, Any]) -> RobotReport:
    cnt = max(acc['cnt'], 1.0)
    return RobotReport(
        robot=robot, windows=acc['n'], mse_normalized=acc['sq_n'] / cnt,
        mae=acc['abs'] / cnt, rmse=float(np.sqrt(acc['sq'] / cnt)),
        mae_per_dim=(acc['abs_dim'] / np.maximum(acc['cnt_dim'], 1)).tolist(),
    )


def _time_inference(
    runner: PolicyRunner, windows: Any, picks: np.ndarray[Any, Any], steps: int | None
) -> list[float]:
    """Milliseconds per chunk for ``runner.infer`` on raw episode frames (one warm-up call)."""
    times: list[float] = []
    to = runner.obs_horizon
    for k, i in enumerate(picks):
        d, w, _ = windows.flat_index(int(i))
        ref_i, t = (int(v) for v in windows.windows[d][w])
        ref = windows.refs[ref_i]
        lo = max(0, t - to + 1)
        state = np.asarray(ref.episode.state[lo: t + 1])
        images = {r: np.asarray(ref.episode.images[r][lo: t + 1]) for r in ref.episode.images}
        start = time.perf_counter()
        runner.infer(state, images, ref.robot, steps)
        if k > 0 or len(picks) == 1:
            times.append((time.perf_counter() - start) * 1000.0)
    return times
