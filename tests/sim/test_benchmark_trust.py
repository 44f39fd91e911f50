"""The benchmark's trust report: paired differences, the share of the gap closed, AUROC tables."""

from __future__ import annotations

import pytest

from ptr_core.errors import ConfigError
from ptr_sim.benchmark import contrasts, paired_differences, trust_summary
from ptr_sim.benchmark.report import _markdown_trust
from ptr_sim.benchmark_config import BenchmarkConfig, MethodSpec


def _cell(method: str, seed: int, successes: list[bool], data: str = 'mix',
          **extra: object) -> dict[str, object]:
    return {'task': 'push-v3', 'data': data, 'head': 'flow', 'method': method, 'seed': seed,
            'successes': successes, 'success_rate': sum(successes) / len(successes), **extra}


def test_paired_difference_and_gap_closed() -> None:
    results = [
        _cell('uniform', 0, [False, False, True, False]),
        _cell('trust', 0, [True, False, True, True]),
        _cell('uniform', 1, [False, True, False, False]),
        _cell('trust', 1, [True, True, False, True]),
        _cell('uniform', 0, [True, True, True, True], data='control'),
        _cell('uniform', 1, [True, True, True, False], data='control'),
    ]
    (row,) = [p for p in paired_differences(results) if p['data'] == 'mix']
    assert row['pairs'] == 8
    assert row['uniform'] == pytest.approx(2 / 8)
    assert row['method_mean'] == pytest.approx(6 / 8)
    assert row['diff'] == pytest.approx(0.5)
    assert row['ci_low'] < 0.5 < row['ci_high']
    assert row['clean'] == pytest.approx(7 / 8)
    assert row['gap_closed'] == pytest.approx(0.5 / (7 / 8 - 2 / 8))


def test_ablation_arms_are_paired_with_the_shipped_trust() -> None:
    results = [
        _cell('uniform', 0, [False, False, False, False]),
        _cell('trust', 0, [True, True, True, False]),
        _cell('trust_in_sample', 0, [True, False, False, False]),
        _cell('trust', 1, [True, True, False, False]),
        _cell('trust_in_sample', 1, [False, True, False, False]),
        _cell('trust_in_sample', 2, [True, True, True, True]),  # no trust cell: not paired
        _cell('uniform', 0, [True, True, True, True], data='control'),
    ]
    (row,) = contrasts(results)
    assert (row['method'], row['reference'], row['pairs']) == ('trust_in_sample', 'trust', 8)
    assert row['reference_mean'] == pytest.approx(5 / 8)
    assert row['method_mean'] == pytest.approx(2 / 8)
    assert row['diff'] == pytest.approx(-3 / 8)
    # every pair is equal or worse, but two seeds are two clusters: t at 1 degree of freedom
    assert row['interval'] == 'clustered by seed (2 seeds)'
    assert row['ci_low'] < -1.0 < 0.0 < row['ci_high']
    text = '\n'.join(_markdown_trust({'contrasts': [row]}))
    assert 'vs `trust`' in text
    assert '| push-v3 | mix | flow | trust_in_sample | 8 | 0.62 | 0.25 | -0.38 [' in text
    # uniform and the reference itself are never contrasts
    assert not contrasts([_cell('uniform', 0, [True]), _cell('trust', 0, [False])])


def test_trust_summary_and_markdown() -> None:
    auroc = {'trust': {'random_labels': 1.0, 'noisy_0.5': 0.6},
             'length': {'random_labels': 0.5, 'noisy_0.5': 0.7}}
    results = [_cell('uniform', 0, [False, True]),
               _cell('trust', 0, [True, True], trust_auroc=auroc, trust_auroc_length=auroc,
                     trust_by_source={'expert': 0.98, 'random_labels': 0.02},
                     scoring_s=30.0, train_s=300.0)]
    (t,) = trust_summary(results)
    assert t['auroc']['trust']['random_labels'] == 1.0
    assert t['min_auroc_over_seeds']['noisy_0.5'] == 0.6
    assert t['scoring_over_training'] == pytest.approx(0.1)
    text = '\n'.join(_markdown_trust({'paired': paired_differences(results), 'trust': [t]}))
    assert 'gap closed' in text
    assert '| trust | 0.60 [0.60] | 1.00 [1.00] |' in text


def test_trust_methods_need_a_base() -> None:
    with pytest.raises(ConfigError, match='pretrained base'):
        BenchmarkConfig(methods=(MethodSpec('trust', 'trust'),), pretrain_tasks=(),
                        pretrain_episodes=0)
