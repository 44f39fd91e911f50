"""Issue 26's protocol: disjoint dev and test goals, a recording and a base per seed, intervals
clustered by seed, the baseline arms' untrained checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ptr_core.errors import ConfigError, PtrError
from ptr_sim.benchmark import cells, markdown, summarize
from ptr_sim.benchmark.baselines import lag_correlations, rest_lengths, two_group_keep
from ptr_sim.benchmark.statistics import clustered_interval, paired_differences
from ptr_sim.benchmark_config import MethodSpec, load_benchmark_config
from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.evaluate import eval_seeds


def test_dev_and_test_goals_are_disjoint_whatever_the_seeds() -> None:
    dev = {s for seed in range(60) for s in eval_seeds(100, seed * 10 + 1, 'dev')}
    test = {s for seed in range(60) for s in eval_seeds(100, seed * 10 + 1, 'test')}
    assert len(dev) == len(test) == 6000
    assert not dev & test
    assert min(dev | test) >= EVAL_SEED_OFFSET  # and never a recording's
    assert max(test) < 2 ** 31  # a seed Meta-World takes
    assert eval_seeds(3, 2) == eval_seeds(3, 2, 'dev')  # dev: the goals runs before had
    env = MetaWorldEnv('push-v3')
    goals = {split: {tuple(np.round(env.reset(s)[36:39], 4)) for s in eval_seeds(20, 0, split)}
             for split in ('dev', 'test')}
    assert not goals['dev'] & goals['test']
    with pytest.raises(PtrError, match='split'):
        eval_seeds(3, 0, 'val')
    with pytest.raises(PtrError, match='evaluation seed'):
        eval_seeds(3, 5000, 'test')
    assert load_benchmark_config('hard', ['split=test']).split == 'test'
    with pytest.raises(ConfigError, match='split'):
        load_benchmark_config('tiny', ['split=holdout'])


def test_each_seed_reads_its_own_recording() -> None:
    cfg = load_benchmark_config('tiny', ['seeds=[0, 1]'])
    dirs = {c.seed: c.data_dir(Path('/o')) for c in cells(cfg)}
    assert dirs == {0: Path('/o/data/seed0/pick-place-v3/mix'),
                    1: Path('/o/data/seed1/pick-place-v3/mix')}


def test_the_interval_is_clustered_by_seed() -> None:
    # the same goals' differences, once spread evenly over seeds and once with the seeds
    # disagreeing: the clustered interval widens with the seed-to-seed spread
    even = [[1.0] * 5 + [0.0] * 5] * 3
    apart = [[1.0] * 9 + [0.0], [1.0] * 5 + [0.0] * 5, [1.0] + [0.0] * 9]
    half_even, how = clustered_interval(even)
    half_apart, _ = clustered_interval(apart)
    assert how == 'clustered by seed (3 seeds)'
    pooled = 1.96 * np.std(np.concatenate(apart), ddof=1) / np.sqrt(30)
    assert half_even == pytest.approx(1.96 * np.std(np.concatenate(even), ddof=1) / np.sqrt(30))
    # equal goals per seed: the t interval (2 degrees of freedom) of the seed means
    means = [np.mean(g) for g in apart]
    assert half_apart == pytest.approx(4.303 * np.std(means, ddof=1) / np.sqrt(3))
    assert half_apart > 2 * pooled
    half_one, how_one = clustered_interval([[1.0, 0.0, 1.0, 1.0]])
    assert how_one == 'over goals (1 seed)'
    assert half_one == pytest.approx(1.96 * np.std([1, 0, 1, 1], ddof=1) / 2)
    # in the paired table and its markdown, with the split named
    results = []
    for seed, goals in enumerate(apart):
        for method, successes in (('uniform', [False] * 10), ('trust', [d > 0 for d in goals])):
            results.append({'task': 'push-v3', 'data': 'mix', 'head': 'flow', 'method': method,
                            'seed': seed, 'successes': successes, 'episodes': 10,
                            'success_rate': float(np.mean(successes))})
    (row,) = paired_differences(results)
    assert row['seeds'] == 3
    assert row['ci_high'] - row['diff'] == pytest.approx(half_apart)
    cfg = load_benchmark_config('tiny', ['seeds=[0, 1, 2]', 'split=test'])
    text = markdown(summarize(cfg, results))
    assert text.startswith('# ptr benchmark `tiny` — **test** goals')
    assert '## Success rate (mean ± std over seeds; test goals)' in text
    assert '95% CI clustered by seed (3 seeds)' in text


def test_lag_correlation_finds_the_arms_lag() -> None:
    rng = np.random.default_rng(0)
    command = rng.uniform(-1, 1, size=(120, 3))
    steps = np.zeros((120, 3))
    steps[3:] = 0.01 * command[:-3]  # the arm answers 3 steps late: ee[t+4] - ee[t+3]
    ee = np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
    corr = lag_correlations(ee, command)
    assert int(np.nanargmax(corr)) == 3
    assert corr[3] == pytest.approx(1.0)
    assert abs(corr[0]) < 0.3
    flipped = command * [1, -1, 1]
    assert lag_correlations(ee, flipped)[3] < 0.5


def test_rest_length_and_the_two_group_split() -> None:
    moving = np.cumsum(np.full((50, 3), 0.01), axis=0)
    resting = np.concatenate([moving[:20], np.repeat(moving[19:20], 30, axis=0)])
    assert list(rest_lengths([moving, resting])) == [49.0, 19.0]
    scores = np.array([0.95, 0.9, 0.97, 0.2, 0.3, 0.25, np.nan])
    assert list(two_group_keep(scores)) == [1, 1, 1, 0, 0, 0, 0]
    assert list(two_group_keep(scores, keep=2 / 7)) == [1, 0, 1, 0, 0, 0, 0]
    assert list(two_group_keep(np.ones(4))) == [1, 1, 1, 1]  # nothing to split


def test_baseline_arms_are_checked_and_keyed() -> None:
    cfg = load_benchmark_config('hard')
    names = {m.name: m for m in cfg.methods}
    assert {'trust_length', 'trust_random', 'trust_lag_correlation',
            'trust_inverse_dynamics'} <= set(names)
    for bad in ('{b: {weighter: trust, options: {baseline: entropy}}}',
                '{b: {weighter: uniform, options: {baseline: length}}}',
                '{b: {weighter: trust, options: {baseline: length, keep: 0}}}',
                '{b: {weighter: trust, options: {keep: 0.5}}}'):
        with pytest.raises(ConfigError, match='baseline'):
            load_benchmark_config('tiny', [f'methods={bad}'])
    from ptr_sim.benchmark import Cell, cell_fingerprint

    cell = Cell('push-v3', 'flow', names['trust_length'], 0, 'mix')
    other = Cell('push-v3', 'flow', MethodSpec('trust_length', 'trust',
                                               {'baseline': 'length', 'keep': 0.3}), 0, 'mix')
    assert cell_fingerprint(cfg, cell, None) != cell_fingerprint(cfg, other, None)


def test_hard_and_minority_presets_meet_the_issue() -> None:
    hard = load_benchmark_config('hard')
    assert hard.fixed_horizon
    assert hard.split == 'dev'
    assert hard.degraded_share >= 0.4
    low = [t for t in hard.mix if _low_attribution(t)]
    assert not low  # no label corruption
    minority = load_benchmark_config('minority')
    total = sum(minority.mix.values())
    assert minority.mix['expert'] / total == pytest.approx(0.1)
    wrong = sum(n for t, n in minority.mix.items() if _low_attribution(t))
    assert wrong / total == pytest.approx(0.2)


def _low_attribution(tag: str) -> bool:
    from ptr_sim.sources import Source

    return Source.parse(tag).low_attribution


def test_baseline_trust_files_rank_a_recorded_set(tmp_path: Path) -> None:
    """The baseline arms' trust on a real recorded set: the lag-correlation check drops the
    flipped-axis labels; ``keep: matched`` and ``random`` keep the frames the trust arm keeps."""
    from bag_tools.dataset import Dataset
    from bag_tools.trust import (
        EpisodeTrust,
        dataset_content_hash,
        make_trust_file,
        read_trust,
        write_trust,
    )
    from ptr_sim.benchmark import Cell
    from ptr_sim.benchmark.baselines import baseline_trust
    from ptr_sim.benchmark.data import _record_and_ingest

    cfg = load_benchmark_config('tiny', ['record_max_steps=60'])
    ds = Dataset.open(_record_and_ingest(cfg, 'seed0/push-v3/mix', ['push-v3'],
                                         {'expert': 4, 'flipped_axis': 2}, 5, tmp_path,
                                         lambda _: None))
    source = {e['id']: e['tags']['ptr.source'] for e in ds.manifest['episodes']}

    def arm(**options: object) -> dict[str, float]:
        cell = Cell('push-v3', 'flow', MethodSpec('b', 'trust', options), 0, 'mix')
        file, report = baseline_trust(tmp_path, cell, shipped)
        assert set(report['trust_by_source']) == {'expert', 'flipped_axis'}
        return {e.episode_id: e.trust for e in read_trust(file).episodes}

    # the shipped trust arm's file: it keeps two episodes (whichever: only frames are matched)
    digest = dataset_content_hash(ds)
    eps = ds.episodes()
    kept = [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    shipped = write_trust(tmp_path / 'shipped.json', make_trust_file({'x': 1}, [(ds, [
        EpisodeTrust(digest, ep.id, w, w, 0, np.full(ep.length, w)) for ep, w in zip(eps, kept)
    ])]))
    frames = sum(ep.length for ep, w in zip(eps, kept) if w)
    lag = arm(baseline='lag_correlation')
    assert {source[i] for i, w in lag.items() if w == 0} == {'flipped_axis'}
    assert all(lag[i] == 1 for i in source if source[i] == 'expert')
    matched = arm(baseline='lag_correlation', keep='matched')
    assert sum(matched.values()) == 2
    assert {source[i] for i, w in matched.items() if w} == {'expert'}
    drawn = arm(baseline='random')
    lengths = {ep.id: ep.length for ep in eps}
    assert frames <= sum(lengths[i] for i, w in drawn.items() if w) < frames + max(
        lengths.values())
    assert set(arm(baseline='length').values()) <= {0.0, 1.0}
    with pytest.raises(ConfigError, match='baseline'):  # matched needs a trust arm
        load_benchmark_config('tiny', ['methods={uniform: {weighter: uniform}, b: {weighter: '
                                       'trust, options: {baseline: length, keep: matched}}}'])
