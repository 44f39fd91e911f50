"""``ptr score`` at scale: the device, the nearest-state search in bounded memory (exact blocks,
the inverted-file index and its recall), scorer steps that grow with the data.

The search tests use window features of random-walk episodes (what robot states look like: a
trajectory per episode), built directly; the CLI tests run on a synthetic dataset and a base
trained a few steps, since only its frozen encoder is read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.weighting.trust import TrustConfig
from ptr_core.weighting.trust.features import EpisodeInfo, WindowFeatures
from ptr_core.weighting.trust.scorer import (
    EXACT_WINDOWS,
    MAX_STEPS,
    STEP_WINDOWS,
    approximate_neighbours,
    exact_neighbours,
    fit_scorer,
    nearest_state_neighbours,
    training_steps,
)


def walk_features(episodes: int, length: int, dim: int, *, seed: int = 0,
                  chunk: int = 2, da: int = 2) -> WindowFeatures:
    """Window features of ``episodes`` random walks of ``length`` states in ``dim`` dims."""
    gen = torch.Generator().manual_seed(seed)
    start = torch.rand(episodes, 1, dim, generator=gen) * 2 - 1
    state = (start + (0.05 * torch.randn(episodes, length, dim, generator=gen)).cumsum(1))
    n = episodes * length
    table = torch.randn(episodes * (length + chunk), da, generator=gen)
    infos = [EpisodeInfo(0, f'ep{e}', length, '', 'arm', e * (length + chunk))
             for e in range(episodes)]
    episode = torch.arange(episodes).repeat_interleave(length)
    frame = torch.arange(length).repeat(episodes)
    idx = (episode * (length + chunk) + frame)[:, None] + torch.arange(chunk)
    return WindowFeatures(
        h=torch.randn(n, 8, generator=gen), action=table[idx].flatten(1),
        step_mask=torch.ones(n, chunk, dtype=torch.bool),
        dim_mask=torch.ones(n, da, dtype=torch.bool),
        consequence=torch.randn(n, 6, generator=gen), state=state.reshape(n, dim),
        next_state_delta=torch.zeros(n, dim), first_action=table[idx[:, 0]],
        episode=episode, frame=frame, has_next=frame + 1 < length, action_table=table,
        episodes=infos, chunk_length=chunk,
    )


def full_search(feats: WindowFeatures, k: int) -> Tensor:
    """The reference: every distance at once, own episode excluded."""
    d = torch.cdist(feats.state, feats.state)
    d.masked_fill_(feats.episode[:, None] == feats.episode[None, :], float('inf'))
    return d.topk(k, dim=1, largest=False).indices


def recall(found: Tensor, truth: Tensor) -> float:
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(found, truth))
    return hits / truth.numel()


def test_blocked_search_equals_the_full_search_and_skips_its_own_episode() -> None:
    feats = walk_features(37, 23, 4)
    truth = full_search(feats, 16)
    blocked = exact_neighbours(feats, 16, block=50, key_block=97)
    assert blocked.shape == (feats.n, 16)
    assert recall(blocked, truth) > 0.999  # the same sets (a float tie may swap one)
    dist = (feats.state[:, None] - feats.state[blocked]).norm(dim=-1)
    ref = (feats.state[:, None] - feats.state[truth]).norm(dim=-1)
    torch.testing.assert_close(dist, ref, rtol=1e-4, atol=1e-5)  # nearest first, same order
    assert not (feats.episode[blocked] == feats.episode[:, None]).any()
    # a set up to one key block is searched as one block: the dispatcher's answer is exact
    assert feats.n <= EXACT_WINDOWS
    assert torch.equal(nearest_state_neighbours(feats, 16), exact_neighbours(feats, 16))


def test_blocked_search_never_holds_more_than_one_block_of_distances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feats = walk_features(37, 23, 4)
    shapes: list[tuple[int, ...]] = []
    cdist: Callable[..., Tensor] = torch.cdist

    def recorded(a: Tensor, b: Tensor) -> Tensor:
        out = cdist(a, b)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(torch, 'cdist', recorded)
    exact_neighbours(feats, 16, block=50, key_block=97)
    assert shapes
    assert max(r * c for r, c in shapes) == 50 * 97  # never N x N (851 x 851)
    shapes.clear()
    approximate_neighbours(feats, 16)
    assert max(r * c for r, c in shapes) < feats.n * feats.n / 4


def test_approximate_index_finds_most_true_neighbours_and_never_its_own_episode() -> None:
    feats = walk_features(60, 250, 10, seed=1)  # 15k windows, 10-dim states
    approx = approximate_neighbours(feats, 16)
    queries = torch.randperm(feats.n, generator=torch.Generator().manual_seed(0))[:600]
    truth = exact_neighbours(feats, 16, queries=queries)
    assert recall(approx[queries], truth) >= 0.85  # 0.97-0.98 here (seeds 1-3)
    assert approx.min() >= 0
    assert approx.max() < feats.n
    assert not (feats.episode[approx] == feats.episode[:, None]).any()
    # seeded: the same index twice
    assert torch.equal(approx, approximate_neighbours(feats, 16))


def test_a_list_without_enough_other_episodes_is_searched_exactly() -> None:
    feats = walk_features(3, 40, 2, seed=2)  # 11 lists of ~11 windows, 3 episodes
    approx = approximate_neighbours(feats, 30, probes=1)  # one list < 30 keys: exact
    truth = exact_neighbours(feats, 30)
    assert recall(approx, truth) > 0.999
    assert not (feats.episode[approx] == feats.episode[:, None]).any()


def test_training_steps_keep_the_count_of_small_sets_and_grow_with_large_ones() -> None:
    config = TrustConfig()  # steps 200
    assert training_steps(config, 1_000) == 200
    assert training_steps(config, STEP_WINDOWS) == 200
    assert training_steps(config, 2 * STEP_WINDOWS) == 400
    assert training_steps(config, 333_000) == 1301  # one pass of 256 over 500k windows' folds
    assert training_steps(config, 10**9) == MAX_STEPS
    assert training_steps(TrustConfig(steps=2), 40_000) == 2  # a small set: what was asked
    assert training_steps(TrustConfig(steps=2 * MAX_STEPS), 10**9) == 2 * MAX_STEPS


def test_a_scorer_trained_on_more_windows_takes_more_steps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feats = walk_features(121, 500, 3)  # 60,379 windows with a next step
    rows = torch.arange(feats.n)
    # any other-episode rows do as negatives here: the test is about the step count
    neighbours = (rows[:, None] + 500 * torch.arange(1, 5)) % feats.n
    config = TrustConfig(steps=3, batch_size=16, hidden=8)
    with caplog.at_level(logging.INFO, logger='ptr_core.weighting.trust.scorer'):
        model = fit_scorer(feats, rows, neighbours, config, seed=0)
    assert 'trust scorer: 4 steps for 60379 training windows' in caplog.text
    assert not model.training
    caplog.clear()
    small = torch.arange(2_000)
    with caplog.at_level(logging.INFO, logger='ptr_core.weighting.trust.scorer'):
        fit_scorer(feats, small, neighbours, config, seed=0)
    assert 'steps for' not in caplog.text  # the asked steps, nothing to say


@pytest.fixture(scope='module')
def scored_set(
    tmp_path_factory: pytest.TempPathFactory, train_base: Callable[..., Path],
) -> tuple[Path, Path]:
    """(dataset, base): a synthetic reach set and a base trained two steps."""

    root = tmp_path_factory.mktemp('scale')
    data = root / 'data'
    make_synthetic_dataset(data, episodes=8, length=24, state_dim=3,
                           sources=['expert', 'noisy'], seed=3)
    return data, train_base(data, root / 'base', steps=2, batch_size=8, log_every=1)


SMALL = ['--set', 'steps=5', '--set', 'folds=2', '--set', 'hidden=16', '--set',
         'score_draws=1', '--set', 'rounds=1', '--no-progress', '--threads', '1']


def test_ptr_score_runs_on_the_cpu_it_is_given(
    scored_set: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from bag_tools.dataset import Dataset
    from bag_tools.trust import read_trust
    from ptr_cli.main import main

    data, base = scored_set
    out = tmp_path / 't.json'
    assert main(['score', str(data), '--init', str(base), '--out', str(out), '--device',
                 'cpu', *SMALL]) == 0
    text = capsys.readouterr().out
    assert 'scored 8 episodes (184 windows) in' in text
    assert ' s on cpu (features' in text
    assert len(read_trust(out).for_dataset(Dataset.open(data))) == 8


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
def test_an_unavailable_cuda_is_refused_in_one_line_before_any_work(
    scored_set: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from ptr_cli.main import main

    data, base = scored_set
    out = tmp_path / 't.json'
    for device, says in (('cuda', 'CUDA is not available on this machine'),
                         ('cuda:1', 'CUDA is not available on this machine'),
                         ('banana', 'not a device'), ('meta', 'runs on cpu or cuda')):
        code = main(['score', str(data), '--init', str(base), '--out', str(out),
                     '--device', device, *SMALL])
        err = capsys.readouterr().err.strip()
        assert code == 2
        assert err.count('\n') == 0, err  # one line
        assert f'--device {device!r}' in err
        assert says in err
        assert not out.exists()  # refused before the scoring pass


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_scoring_finds_the_cpu_neighbours_and_ranks_alike(
    scored_set: tuple[Path, Path],
) -> None:
    import numpy as np

    from ptr_core.weighting.trust import score_datasets

    feats = walk_features(40, 200, 6)
    cpu = exact_neighbours(feats, 16)
    gpu = nearest_state_neighbours(feats, 16, device=torch.device('cuda'))
    assert recall(gpu, cpu) > 0.99
    data, base = scored_set
    config = TrustConfig(folds=2, steps=50, rounds=1)
    a = score_datasets([data], init=base, config=config, device='cpu')
    b = score_datasets([data], init=base, config=config, device='cuda')
    sa = np.asarray([e.signals['attribution'] for e in a.trust.episodes])
    sb = np.asarray([e.signals['attribution'] for e in b.trust.episodes])
    assert np.corrcoef(sa, sb)[0, 1] > 0.9
