"""Trust scored before training: calibration, cross-fitting, the trust sampler, ``--trust``.

The attribution data: a point moved by random actions, ``s[t+1] = clip(s[t] + 0.3 a[t])``.
``expert`` episodes record the actions that moved it, ``random_labels`` record fresh random
actions, ``delayed_3`` record the action of three steps earlier. The state distribution is the
same for all three, so only the action-consequence relation can tell them apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from bag_tools.dataset import Dataset, EpisodeData, write_episode
from bag_tools.trust import EpisodeTrust, dataset_content_hash, make_trust_file, write_trust
from ptr_core.configuration import load_config
from ptr_core.data import MixtureSampler
from ptr_core.errors import ConfigError, PtrError
from ptr_core.synthetic import robot_entry
from ptr_core.trainer import train
from ptr_core.weighting.trust import TrustConfig, score_datasets
from ptr_core.weighting.trust.calibrate import (
    CALIBRATION_VERSION,
    auroc,
    auroc_length_controlled,
    fit_calibration,
    fit_mixture,
)

KINDS = ('expert', 'expert', 'random_labels', 'delayed_3')


def write_labels_dataset(root: Path, *, episodes: int = 16, length: int = 40, dim: int = 3,
                         seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    written = []
    for i in range(episodes):
        kind = KINDS[i % len(KINDS)]
        s = rng.uniform(-1, 1, dim).astype(np.float32)
        states, executed = [], []
        for _ in range(length):
            a = rng.uniform(-1, 1, dim).astype(np.float32)
            states.append(s.copy())
            executed.append(a)
            s = np.clip(s + 0.3 * a, -2, 2).astype(np.float32)
        ex = np.stack(executed)
        if kind == 'random_labels':
            rec = rng.uniform(-1, 1, ex.shape).astype(np.float32)
        elif kind == 'delayed_3':
            rec = np.concatenate([np.repeat(ex[:1], 3, 0), ex[:-3]])
        else:
            rec = ex
        ep = EpisodeData(
            id=f'ep{i:03d}', robot='arm', timestamp=np.arange(length, dtype=np.int64) * 10**8,
            state=np.stack(states), action=rec, state_valid=np.ones(length, bool),
            action_valid=np.ones(length, bool), task='wander', source='synthetic',
            content_hash=f'labels-{seed}-{i}', tags={'ptr.source': kind},
        )
        write_episode(root, ep)
        written.append(ep)
    ds.add_episodes(written, robots={'arm': robot_entry('arm', state_dim=dim, action_dim=dim)})
    return root


@pytest.fixture(scope='module')
def labelled(
    tmp_path_factory: pytest.TempPathFactory, train_base: Callable[..., Path],
) -> tuple[Path, Path]:
    """(dataset, base checkpoint): the base is a few uniform steps, only its encoder is read."""
    root = tmp_path_factory.mktemp('trust')
    data = write_labels_dataset(root / 'data')
    return data, train_base(data, root / 'base')


def test_mixture_accepts_two_groups_and_keeps_one_group_uniform() -> None:
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(1.0, 0.1, 30), rng.normal(0.0, 0.1, 10)])
    mix = fit_mixture(two, anchor=0.0)
    assert mix.accepted
    assert mix.mu_hi == pytest.approx(1.0, abs=0.1)
    assert mix.share_lo == pytest.approx(0.25, abs=0.05)
    p = mix.posterior_good(np.linspace(-0.5, 1.5, 50))
    assert np.all(np.diff(p) >= 0)  # monotone in the score
    assert p[0] < 0.01 < 0.99 < p[-1]
    one = rng.normal(1.0, 0.1, 40)
    flat = fit_mixture(one, anchor=0.0)
    assert not flat.accepted
    assert np.all(flat.posterior_good(one) == 1.0)


def test_calibration_splits_each_severity_and_leaves_good_ones_whole() -> None:
    rng = np.random.default_rng(1)
    good = rng.normal(1.0, 0.15, 40)
    mild = rng.normal(0.0, 0.15, 16)  # shuffled / delayed labels: about chance
    severe = rng.normal(-4.0, 1.5, 14)  # random labels: far below it
    scores = np.concatenate([good, mild, severe])
    # one fit holds a component per severity (two Gaussians took only the severe group)
    one = fit_mixture(scores, anchor=0.0)
    assert one.accepted
    assert sum(not c.good for c in one.components) >= 2
    assert one.posterior_good(mild).mean() < 0.1
    cal = fit_calibration(scores, anchor=0.0)
    assert cal.posterior_good(severe).max() < 0.01
    assert cal.posterior_good(mild).mean() < 0.1
    assert cal.posterior_good(good).mean() > 0.9
    # two strategies of good demonstrations, both well above chance: no split
    fine = np.concatenate([rng.normal(0.7, 0.08, 20), rng.normal(1.2, 0.08, 20)])
    assert not fit_calibration(fine, anchor=0.0).accepted
    assert np.all(fit_calibration(good, anchor=0.0).posterior_good(good) == 1.0)


def test_a_mild_bad_group_above_a_quarter_of_the_way_to_the_good_one_is_split() -> None:
    """Small noise, short delays and recoveries (the ``mild`` mix) score about a third of the way
    from chance to the experts after one round on pick-place with the diffusion base (0.31 vs
    1.02, D 2.3): the old anchor (a quarter of the way) kept every episode at trust 1. Half the
    way splits them off, and still leaves two good strategies well above chance whole."""
    rng = np.random.default_rng(0)
    good = rng.normal(1.02, 0.11, 40)
    mild = rng.normal(0.31, 0.5, 40)
    scores = np.concatenate([good, mild])
    assert not fit_mixture(scores, anchor=0.0, anchor_fraction=0.25).accepted
    mix = fit_mixture(scores, anchor=0.0, anchor_fraction=0.5)
    assert mix.accepted
    assert mix.posterior_good(good).mean() > 0.85
    assert mix.posterior_good(mild).mean() < 0.4
    fine = np.concatenate([rng.normal(0.7, 0.08, 20), rng.normal(1.2, 0.08, 20)])
    assert not fit_calibration(fine, anchor=0.0, anchor_fraction=0.5).accepted
    with pytest.raises(ConfigError, match='anchor_fraction'):
        TrustConfig(anchor_fraction=1.0)


def test_mixture_separation_is_not_spoilt_by_a_far_bad_group() -> None:
    """A bad group of several severities (random labels far below chance, the milder ones near
    it) has a wide sigma set by its far end; the plain Ashman's D of this data is 1.24-1.39
    (below 1.5) though the good group overlaps none of it. D on the facing sides accepts."""
    for seed in range(3):
        rng = np.random.default_rng(seed)
        good = rng.normal(0.8, 0.1, 40)
        mild = rng.uniform(-0.5, 0.5, 16)
        mid = rng.normal(-1.0, 0.3, 8)
        severe = rng.normal(-6.0, 0.8, 8)
        mix = fit_mixture(np.concatenate([good, mild, mid, severe]), anchor=0.0)
        assert mix.sigma_lo > 2.0 > mix.inner_lo  # type: ignore[operator]
        plain = (mix.mu_hi - mix.mu_lo) / np.sqrt((mix.sigma_lo**2 + mix.sigma_hi**2) / 2)
        assert plain < 1.5 <= mix.separation
        assert mix.accepted
        p = mix.posterior_good
        assert p(good).mean() > 0.9
        assert p(mild).mean() < 0.1
        assert p(severe).max() < 0.01


def test_auroc_and_length_control() -> None:
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1], [1]) == 0.5
    lengths = np.asarray([10, 12, 14, 30, 32, 34], float)
    score = -lengths  # prefers short episodes, nothing else
    good = np.asarray([1, 1, 1, 0, 0, 0], bool)
    assert auroc(score[good], score[~good]) == 1.0
    assert auroc_length_controlled(score, lengths, good, ~good) < 0.7  # 1.0 uncontrolled


def test_cross_fitted_trust_separates_bad_labels(labelled: tuple[Path, Path]) -> None:
    data, base = labelled
    torch.set_num_threads(1)
    config = TrustConfig(folds=2, steps=150, hidden=64, batch_size=128, score_draws=2,
                         baselines=True)
    res = score_datasets([data], init=base, config=config)
    eps = res.trust.episodes
    assert len(eps) == 16
    assert {ep.fold for ep in eps} == {0, 1}
    assert all(len(ep.frame_trust) == 40 for ep in eps)
    assert all(config.w_min - 1e-9 <= ep.trust <= 1.0 for ep in eps)
    table = res.aurocs()
    assert table['attribution']['random_labels'] >= 0.9
    assert table['trust']['random_labels'] >= 0.9
    mean = {s: np.mean([ep.trust for ep, src in zip(eps, res.sources) if src == s])
            for s in set(res.sources)}
    assert mean['expert'] > mean['random_labels'] + 0.5
    assert res.trust.scorer['folds'] == 2
    assert res.trust.scorer['init_hash']
    assert set(table) >= {'inverse_dynamics', 'length', 'smoothness', 'bc_loss'}
    in_sample = score_datasets([data], init=base, config=TrustConfig(
        folds=2, steps=20, hidden=32, batch_size=128, score_draws=1, in_sample=True))
    assert {ep.fold for ep in in_sample.trust.episodes} == {-1}


def test_sampler_draws_windows_in_proportion_to_their_weights() -> None:
    w = np.asarray([0.0, 1.0, 3.0, 0.0])
    sampler = MixtureSampler([4], [1.0], batch_size=8, seed=0, window_weights=[w])
    draws = [next(it) for it in [iter(sampler)] for _ in range(4000)]
    counts = np.bincount([d[1] for d in draws], minlength=4)
    assert counts[0] == counts[3] == 0
    assert counts[2] / counts[1] == pytest.approx(3.0, rel=0.15)
    with pytest.raises(PtrError, match='window weights'):
        MixtureSampler([4], [1.0], batch_size=8, seed=0, window_weights=[np.zeros(4)])
    with pytest.raises(PtrError, match='finite non-negative'):
        MixtureSampler([4], [1.0], batch_size=8, seed=0, window_weights=[w - 1.0])


def test_trust_scales_each_datasets_share_like_loss_weights_would() -> None:
    """Across datasets a window's draw probability is its uniform one times its trust: a
    dataset trusted at 0.25 throughout gets a quarter of its configured share, one trusted
    nowhere gets none (before: trust only moved draws inside a dataset)."""
    def shares(second: np.ndarray, weights: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
        sampler = MixtureSampler([6, 4], list(weights), batch_size=8, seed=0,
                                 window_weights=[np.ones(6), second])
        it = iter(sampler)
        return np.bincount([next(it)[0] for _ in range(8000)], minlength=2) / 8000

    assert shares(np.full(4, 0.25))[1] == pytest.approx(0.25 / 1.25, abs=0.02)
    assert shares(np.full(4, 0.25), (1.0, 3.0))[1] == pytest.approx(0.75 / 1.75, abs=0.02)
    assert shares(np.zeros(4))[1] == 0.0
    # a dataset without window weights draws as if every window weighed 1
    mixed = MixtureSampler([6, 4], [1.0, 1.0], batch_size=8, seed=0,
                           window_weights=[np.full(6, 0.5), None])
    it = iter(mixed)
    second = np.mean([next(it)[0] for _ in range(8000)])
    assert second == pytest.approx(1.0 / 1.5, abs=0.02)


def _half_trust(data: Path) -> Path:
    ds = Dataset.open(data)
    digest = dataset_content_hash(ds)
    eps = [EpisodeTrust(digest, e['id'], trust=1.0 if i % 2 == 0 else 0.0, score=0.0, fold=0,
                        frame_trust=np.ones(e['length']))
           for i, e in enumerate(ds.manifest['episodes'])]
    return write_trust(data.parent / 'half.trust.json',
                       make_trust_file({'w_min': 0.0}, [(ds, eps)]))


def test_trust_is_the_datas_sampling_and_loss(labelled: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    """``data.trust``: build_data hands MixtureSampler the window weights (sampling) or puts a
    sample weight in every item (loss); a config written when trust was a weighter still
    reads the same."""
    from ptr_core import batch as K
    from ptr_core.data import build_data

    data, _ = labelled
    path = _half_trust(data)
    common = [
        f'data.datasets=[{str(data)!r}]', f'out_dir={str(tmp_path / "run")!r}', 'steps=3',
        'batch_size=16', 'val_every=0', 'save_every=3', 'policy.chunk_length=4',
        'data.val_fraction=0.0', 'policy.unet_dims=[16,32]', 'policy.time_embed_dim=16',
        'policy.encoder.state_hidden=32', 'policy.encoder.context_dim=32', 'device=cpu',
    ]
    cfg = load_config(None, [*common, ('data.trust', str(path))])
    bundle = build_data(cfg.data, chunk_length=cfg.policy.chunk_length, seed=0)
    assert bundle.window_weights is not None
    assert bundle.train.sample_weights is None
    sampler = MixtureSampler(bundle.train.sizes, [1.0], batch_size=16, seed=0,
                             window_weights=bundle.window_weights)
    it = iter(sampler)
    refs = {int(bundle.train.windows[0][next(it)[1]][0]) for _ in range(500)}
    trusted = {i for i, ref in enumerate(bundle.train.refs) if int(ref.episode.id[2:]) % 2 == 0}
    assert refs <= trusted  # trust 0 episodes are never drawn
    final = train(cfg).final
    assert final is not None
    # the checkpoint remembers its training's trust file; evaluating it on other data (which
    # that file does not cover) must not read it
    from ptr_core.evaluation import evaluate

    other = write_labels_dataset(tmp_path / 'other', episodes=4, seed=5)
    report = evaluate(final, [other], max_windows=8, timing_chunks=1)
    assert sum(r.windows for r in report.robots) > 0

    loss = load_config(None, [*common, ('data.trust', str(path)), 'data.trust_apply=loss'])
    bundle = build_data(loss.data, chunk_length=loss.policy.chunk_length, seed=0)
    assert bundle.window_weights is None  # uniform draws ...
    weights = {float(bundle.train[(0, w, w)][K.SAMPLE_WEIGHT])
               for w in range(bundle.train.sizes[0])}
    assert weights == {0.0, 1.0}  # ... each sample's loss weighed by its episode's trust
    with pytest.raises(ConfigError, match=r'data\.trust_apply'):
        load_config(None, [*common, 'data.trust_apply=both'])
    old = load_config(None, [*common, 'weighter.name=trust',
                             ('weighter.options', {'file': str(path), 'apply': 'loss'})])
    assert (old.data.trust, old.data.trust_apply, old.weighter.name) == (str(path), 'loss',
                                                                          'uniform')


def test_stale_trust_refused_by_train(labelled: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = labelled
    path = _half_trust(data)
    ds = Dataset.open(data)
    other = write_labels_dataset(tmp_path / 'other', episodes=4, seed=5)
    assert dataset_content_hash(Dataset.open(other)) != dataset_content_hash(ds)
    cfg = load_config(None, [
        f'data.datasets=[{str(other)!r}]', f'out_dir={str(tmp_path / "run")!r}', 'steps=1',
        'batch_size=8', 'val_every=0', 'policy.chunk_length=4', 'data.val_fraction=0.0',
        'policy.unet_dims=[16,32]', 'device=cpu', ('data.trust', str(path)),
    ])
    with pytest.raises(PtrError, match=rf'{path}.*stale'):
        train(cfg)


def test_ptr_score_cli_writes_the_file_and_prints_aurocs(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from bag_tools.trust import read_trust
    from ptr_cli.main import main

    data, base = labelled
    out = tmp_path / 'labels.trust.json'
    code = main(['score', str(data), '--init', str(base), '--out', str(out), '--no-progress',
                 '--report', str(tmp_path / 'r.json'), '--set', 'steps=10', '--set',
                 'folds=2', '--set', 'hidden=16', '--set', 'score_draws=1'])
    assert code == 0
    text = capsys.readouterr().out
    assert 'scored 16 episodes' in text
    assert 'episode AUROC, expert vs source' in text
    assert len(read_trust(out).for_dataset(Dataset.open(data))) == 16
    assert main(['score', str(data), '--init', str(base), '--set', 'folds=1']) == 2


def test_refinement_rounds_draw_training_windows_by_the_last_rounds_trust() -> None:
    from ptr_core.weighting.trust.scorer import _weighted_batches

    rows = torch.arange(10, 20)
    weights = torch.zeros(10)
    weights[[0, 3]] = torch.tensor([1.0, 3.0])  # rows 10 and 13 only, 1 : 3
    config = TrustConfig(steps=50, batch_size=64)
    drawn = torch.cat(list(_weighted_batches(rows, weights, config, torch.Generator()
                                             .manual_seed(0))))
    assert len(drawn) == 50 * 10  # a batch holds at most the training windows
    assert set(drawn.tolist()) == {10, 13}
    share = float((drawn == 13).double().mean())
    assert share == pytest.approx(0.75, abs=0.06)
    with pytest.raises(ConfigError, match='rounds'):
        TrustConfig(rounds=0)


def test_refits_draw_the_good_group_whatever_its_share() -> None:
    """The refits draw by the trust and never from an episode closer to chance than
    ``anchor_fraction`` of the way to the good group; the old top-half rule (``refine_keep``
    0.5, the default until 2026-12-07) assumed half of the episodes good and left good ones
    out of the refits whenever more than half were good."""
    from ptr_core.weighting.trust.crossfit import refit_trust

    rng = np.random.default_rng(0)
    # 30 good (+1), one stray episode near chance (+0.2), 9 random labels (-8), no score
    scores = np.concatenate([1.0 + 0.1 * rng.standard_normal(30), [0.2],
                             -8.0 + 1.0 * rng.standard_normal(9), [np.nan]])
    trust = refit_trust(scores, TrustConfig())
    assert trust is not None
    assert trust[:30].min() > 0.9  # every good episode, not the top half of the set
    assert trust[30] == 0.0  # under the line: not drawn, whatever the mixture says of it
    assert trust[31:40].max() <= 0.01
    assert trust[40] == 1.0
    half = refit_trust(scores, TrustConfig(refine_keep=0.5))
    assert half is not None
    assert int((half[:30] > 0.5).sum()) <= 20  # the old rule: the top 20 of 40 only
    floored = refit_trust(scores, TrustConfig(w_min=0.02))
    assert floored is not None
    assert 0.0 < floored[30] <= 0.02 * 0.021
    # a minority of experts (10 %) among wrong labels near chance and far below it
    minority = np.concatenate([1.0 + 0.1 * rng.standard_normal(4),
                               0.05 + 0.1 * rng.standard_normal(24),
                               -4.0 + 1.0 * rng.standard_normal(12)])
    few = refit_trust(minority, TrustConfig())
    assert few is not None
    assert few[:4].min() > 0.9
    assert few[4:].max() <= 0.01
    # expert-only scores (one group): no split, nothing to refine
    assert refit_trust(1.0 + 0.1 * rng.standard_normal(40), TrustConfig()) is None
    with pytest.raises(ConfigError, match='refine_keep'):
        TrustConfig(refine_keep=0.0)


def test_refinement_refits_on_the_trusted_episodes(labelled: tuple[Path, Path]) -> None:
    data, base = labelled
    torch.set_num_threads(1)
    config = TrustConfig(folds=2, steps=150, hidden=64, batch_size=128, score_draws=2,
                         rounds=2)
    res = score_datasets([data], init=base, config=config)
    assert res.trust.scorer['rounds_run'] == 2  # random labels: a distinct bad group
    assert res.aurocs()['trust']['random_labels'] >= 0.9
    one = score_datasets([data], init=base, config=dataclasses.replace(config, rounds=1))
    assert one.trust.scorer['rounds_run'] == 1
    # the file says where and how long each copy trained (steps grow with the data)
    assert one.trust.scorer['device'] == 'cpu'
    assert one.trust.scorer['steps_per_copy'] >= config.steps
    assert one.trust.scorer['calibration'] == CALIBRATION_VERSION  # which rules split it
    assert 'inverse_dynamics' not in one.aurocs()  # baselines off: those probes never ran
    assert [e.score for e in one.trust.episodes] != [e.score for e in res.trust.episodes]
