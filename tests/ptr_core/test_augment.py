"""Random-shift augmentation (DrQ's pad + random crop): a translation by at most the pad, on
the training windows of image policies only; never at validation, evaluation or inference."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch

from bag_tools.dataset import Dataset
from ptr_core import batch as K
from ptr_core.data import DataBundle, _random_shift, build_data
from ptr_core.preprocess import observation_batch

PAD = 3


def _offset(shifted: torch.Tensor, frames: torch.Tensor, pad: int) -> tuple[int, int] | None:
    """The ``(dy, dx)`` with ``|dy|, |dx| <= pad`` of which ``shifted`` is ``frames`` translated
    (edges replicated), or None when no such translation gives it."""
    _, _, h, w = frames.shape
    for dy, dx in itertools.product(range(-pad, pad + 1), repeat=2):
        rows = (torch.arange(h) + dy).clamp(0, h - 1)
        cols = (torch.arange(w) + dx).clamp(0, w - 1)
        if torch.equal(frames[:, :, rows][:, :, :, cols], shifted):
            return dy, dx
    return None


def test_random_shift_translates_by_at_most_the_pad() -> None:
    # every pixel distinct, so one translation and only one explains an output
    frames = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    seen = set()
    for seed in range(300):
        out = _random_shift(frames, PAD, np.random.default_rng(seed))
        assert out.shape == frames.shape
        offset = _offset(out, frames, PAD)
        assert offset is not None, seed  # one offset for the whole history, within the pad
        seen.add(offset)
    assert (0, 0) in seen
    assert {(-PAD, -PAD), (PAD, PAD)} <= seen
    assert len(seen) >= 40  # of the 49 offsets in [-3, 3]^2


def _bundles(dataset: Path, tiny_config, shift: int) -> tuple[DataBundle, DataBundle]:  # type: ignore[no-untyped-def]
    cfg = tiny_config(dataset, Path('/u'), f'data.image_shift={shift}', 'data.val_fraction=0.3')
    shifted = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    plain = build_data(dataclasses.replace(cfg.data, image_shift=0),
                       chunk_length=cfg.policy.chunk_length, seed=0,
                       preprocessor=shifted.preprocessor)
    return shifted, plain


def test_shift_is_training_only_and_inference_sees_the_frames(  # type: ignore[no-untyped-def]
    image_dataset: Path, tiny_config
) -> None:
    shifted, plain = _bundles(image_dataset, tiny_config, PAD)
    assert shifted.val is not None
    assert plain.val is not None
    key = K.obs_image_key('front')
    moved = 0
    for g in range(12):
        train, ref = shifted.train[(0, 5, g)][key], plain.train[(0, 5, g)][key]
        assert _offset(train, ref, PAD) is not None
        moved += not torch.equal(train, ref)
        # validation windows are never shifted
        assert torch.equal(shifted.val[(0, 2, g)][key], plain.val[(0, 2, g)][key])
    assert moved >= 6

    # inference (PolicyRunner, the sim evaluation, the node) builds its batch with
    # observation_batch from the raw frames: the unshifted window, exactly
    pre = shifted.preprocessor
    window = plain.train[(0, 5, 0)]
    to = window[key].shape[0]
    ref_i, t = (int(v) for v in plain.train.windows[0][5])
    epref = plain.train.refs[ref_i]
    ep = Dataset.open(image_dataset).episode(epref.episode.id)
    steps = np.clip(np.arange(t - to + 1, t + 1), 0, None)
    imgs = {role: frames[steps] for role, frames in ep.images.items()}
    batch = observation_batch(ep.state[steps], imgs, ep.robot, pre)
    for role in ep.images:
        k = K.obs_image_key(role)
        assert torch.equal(batch[k][0], window[k]), role


def test_shift_leaves_the_state_only_path_unchanged(  # type: ignore[no-untyped-def]
    state_dataset: Path, tiny_config
) -> None:
    """On by default (``data.image_shift: 4``): without cameras every sample, noise included,
    is the one a run with the shift off draws."""
    shifted, plain = _bundles(state_dataset, tiny_config, 4)
    for g in range(8):
        a, b = shifted.train[(0, 3, g)], plain.train[(0, 3, g)]
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
