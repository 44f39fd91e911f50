"""Config loading: YAML presets, overrides, and errors that name the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ptr_core.configuration import TrainConfig, from_dict, load_config, to_dict
from ptr_core.errors import ConfigError


def test_presets_load_and_validate(repo_root: Path) -> None:
    debug = load_config(repo_root / 'config/train/debug.yaml')
    uniform = load_config(repo_root / 'config/train/uniform.yaml')
    assert debug.steps <= 100
    assert debug.policy.encoder.channels == (16, 32)
    assert uniform.policy.chunk_length == 16
    assert uniform.data.delta(uniform.policy.chunk_length) == 16
    assert uniform.data.delta(4) == 4  # Δ = L unless data.future_offset is set
    assert load_config(None, ['data.future_offset=3']).data.delta(4) == 3
    assert uniform.weighter.name == 'uniform'


def test_unknown_key_is_named(tmp_path: Path) -> None:
    file = tmp_path / 'c.yaml'
    file.write_text('steps: 3\npolicy:\n  encoder:\n    chanels: [8]\n')
    with pytest.raises(ConfigError, match=r'policy\.encoder\.chanels'):
        load_config(file)
    with pytest.raises(ConfigError, match=r"'optim\.lrr'"):
        load_config(None, ['optim.lrr=1'])


def test_bad_values_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r'policy\.head'):
        load_config(None, ['policy.head=gan'])
    with pytest.raises(ConfigError, match='steps: expected an integer'):
        load_config(None, ['steps=many'])
    with pytest.raises(ConfigError, match=r'data\.obs_horizon'):
        load_config(None, ['data.obs_horizon=0'])
    with pytest.raises(ConfigError, match='key=value'):
        load_config(None, ['steps'])


def test_overrides_are_yaml_typed_and_roundtrip() -> None:
    cfg = load_config(None, ['optim.lr=3e-4', 'data.datasets=[/a, {path: /b, weight: 2}]',
                             'weighter.options={alpha: 0.5}', 'data.future_offset=null'])
    assert cfg.optim.lr == pytest.approx(3e-4)
    assert [(d.path, d.weight) for d in cfg.data.datasets] == [('/a', 1.0), ('/b', 2.0)]
    assert cfg.weighter.options == {'alpha': 0.5}
    assert from_dict(TrainConfig, to_dict(cfg)) == cfg


def test_the_chunk_length_is_the_policys_and_its_old_name_still_loads(repo_root: Path) -> None:
    assert 'chunk_length' not in to_dict(TrainConfig())['data']
    new = load_config(None, ['policy.chunk_length=6'])
    assert new.policy.chunk_length == 6
    # a config or a checkpoint written when it was data.chunk_length reads the same
    old = load_config(None, ['data.chunk_length=6'])
    assert old == new
    assert from_dict(TrainConfig, {'data': {'chunk_length': 6, 'obs_horizon': 3}}) == load_config(
        None, ['policy.chunk_length=6', 'data.obs_horizon=3'])
    with pytest.raises(ConfigError, match=r'uniform\.yaml: data\.chunk_length and '
                                          r'policy\.chunk_length: both set; data\.chunk_length '
                                          r'is the old name'):
        load_config(repo_root / 'config/train/uniform.yaml', ['data.chunk_length=8'])
    with pytest.raises(ConfigError, match=r'^policy\.chunk_length: 0 is invalid'):
        load_config(None, ['policy.chunk_length=0'])
