"""Checkpoints: save → load gives identical actions; pickles are refused, never executed."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bag_tools.dataset import Dataset
from ptr_core.checkpoint import load_checkpoint
from ptr_core.errors import CheckpointError
from ptr_core.inference import PolicyRunner
from ptr_core.trainer import policy_from_checkpoint, train

MARKER = Path('/tmp') / f'ptr-unpickled-{__import__("os").getpid()}'


class _Exploit:
    """Unpickling this would create MARKER: proof that a loader executed code."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (MARKER,))


def _train(dataset: Path, out: Path, tiny_config) -> Path:  # type: ignore[no-untyped-def]
    result = train(tiny_config(dataset, out, 'steps=3'))
    assert result.final is not None
    return result.final


def test_save_load_gives_identical_actions(image_dataset: Path, tmp_path: Path,
                                           tiny_config) -> None:  # type: ignore[no-untyped-def]
    final = _train(image_dataset, tmp_path / 'run', tiny_config)
    ckpt = load_checkpoint(final)
    assert ckpt.step == 3
    assert ckpt.config.policy.chunk_length == 4
    assert ckpt.robots['gripper']['camera_roles'] == ['front']
    a = PolicyRunner.from_checkpoint(final)
    b = PolicyRunner.from_checkpoint(final)
    state = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    images = {r: np.random.default_rng(1).integers(0, 255, (2, 16, 16, 3), np.uint8)
              for r in ('front', 'wrist')}
    out_a, out_b = a.infer(state, images, 'arm'), b.infer(state, images, 'arm')
    assert out_a.shape == (4, 3)
    np.testing.assert_array_equal(out_a, out_b)
    # the loaded EMA policy equals the in-memory one: same parameters, element for element
    policy = policy_from_checkpoint(final)
    for (k, v), (k2, v2) in zip(policy.state_dict().items(), a.policy.state_dict().items()):
        assert k == k2
        assert torch.equal(v, v2)
    raw = PolicyRunner.from_checkpoint(final, use_ema=False)
    raw_w, ema_w = raw.policy.state_dict(), a.policy.state_dict()
    assert any(not torch.equal(raw_w[k], ema_w[k]) for k in raw_w)


def test_planted_pickles_are_refused_not_executed(state_dataset: Path, tmp_path: Path,
                                                  tiny_config) -> None:  # type: ignore[no-untyped-def]
    final = _train(state_dataset, tmp_path / 'run', tiny_config)
    MARKER.unlink(missing_ok=True)
    payload = pickle.dumps(_Exploit())

    # 1) a pickle dropped beside the weights
    (final / 'extra.pt').write_bytes(payload)
    with pytest.raises(CheckpointError, match=r'extra\.pt: refusing .* never unpickles'):
        PolicyRunner.from_checkpoint(final)
    (final / 'extra.pt').unlink()

    # 2) model.safetensors replaced by a pickle (and by a torch.save zip)
    good = (final / 'model.safetensors').read_bytes()
    (final / 'model.safetensors').write_bytes(payload)
    with pytest.raises(CheckpointError, match=r'model\.safetensors: refusing .* is a pickle'):
        load_checkpoint(final)
    torch.save({'w': torch.zeros(1)}, final / 'model.safetensors')
    with pytest.raises(CheckpointError, match=r'zip/torch\.save archive'):
        load_checkpoint(final)
    (final / 'model.safetensors').write_bytes(good)

    # 3) a single pickled file passed as the checkpoint
    (tmp_path / 'policy.pth').write_bytes(payload)
    with pytest.raises(CheckpointError, match='refusing to load a single file'):
        load_checkpoint(tmp_path / 'policy.pth')
    assert not MARKER.exists()
    assert load_checkpoint(final).step == 3  # restored: loads again


def test_broken_checkpoints_have_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match='checkpoint not found'):
        load_checkpoint(tmp_path / 'none')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CheckpointError, match=r'not a ptr checkpoint \(no config.json\)'):
        load_checkpoint(tmp_path / 'empty')


def _fields(cls: type, value: object, where: str) -> list[str]:
    """Every field of dataclass ``cls`` (recursively) missing from the JSON ``value``."""
    import dataclasses
    import typing

    missing = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not isinstance(value, dict) or f.name not in value:
            missing.append(f'{where}.{f.name}')
            continue
        sub = hints[f.name]
        if dataclasses.is_dataclass(sub):
            missing += _fields(sub, value[f.name], f'{where}.{f.name}')  # type: ignore[arg-type]
    return missing


def test_checkpoint_config_holds_every_effective_option(
    state_dataset: Path, tmp_path: Path, tiny_config  # type: ignore[no-untyped-def]
) -> None:
    """config.json: every field of every config dataclass, and the weighter's options resolved
    (a YAML that names one PTR option still saves all of them, with their effective values)."""
    import json

    from ptr_core.configuration import TrainConfig
    from ptr_core.weighting.ptr.config import PTRConfig

    result = train(tiny_config(state_dataset, tmp_path / 'run', 'steps=2', 'weighter.name=ptr',
                               'weighter.options={warmup_steps: 1}'))
    assert result.final is not None
    meta = json.loads((result.final / 'config.json').read_text())
    saved = meta['train_config']
    assert _fields(TrainConfig, saved, 'train_config') == []
    options = saved['weighter']['options']
    assert _fields(PTRConfig, options, 'weighter.options') == []
    assert options['warmup_steps'] == 1  # the configured value ...
    assert options['detach'] == PTRConfig().detach  # ... and the default it ran with
    assert meta['weighter']['options'] == options
    run_config = json.loads((tmp_path / 'run' / 'config.json').read_text())
    assert run_config['weighter']['options'] == options
    # the resolved options load back into the same weighter config
    ckpt = load_checkpoint(result.final)
    assert PTRConfig.from_options(ckpt.config.weighter.options) == PTRConfig(warmup_steps=1)


def _keys(obj: object, key: str, where: str = '') -> list[str]:
    """Where ``key`` occurs in a JSON document (``a.b.c`` paths)."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items()
                for p in ([f'{where}{k}'] if k == key else []) + _keys(v, key, f'{where}{k}.')]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _keys(v, key, f'{where}{i}.')]
    return []


def test_robots_json_stores_each_robot_as_its_profile(image_dataset: Path, tmp_path: Path,
                                                     tiny_config) -> None:  # type: ignore[no-untyped-def]
    import json

    final = _train(image_dataset, tmp_path / 'run', tiny_config)
    stored = json.loads((final / 'robots.json').read_text())
    assert {name: list(record) for name, record in stored.items()} == {
        'arm': ['profile'], 'gripper': ['profile']}
    found = [f'{f.relative_to(final)}:{p}' for f in sorted(final.rglob('*.json'))
             for p in _keys(json.loads(f.read_text()), 'image_size')]
    # the layout (what the policy was trained at) and each robot's record, nothing derived
    assert found == ['preprocess.json:layout.image_size', 'robots.json:arm.profile.image_size',
                     'robots.json:gripper.profile.image_size']
    # a loaded robot entry answers what is derived from its profile
    runner = PolicyRunner.from_checkpoint(final)
    manifest = Dataset.open(image_dataset).manifest['robots']
    for robot in runner.robots:
        entry = runner.profile(robot)
        assert entry == manifest[robot]
        assert entry['image_size'] == list(runner.image_size) == [16, 16]


def test_robots_at_another_image_size_than_the_layout_are_refused(
        image_dataset: Path, tmp_path: Path, tiny_config) -> None:  # type: ignore[no-untyped-def]
    import json
    import shutil

    ckpt = tmp_path / 'ckpt'
    shutil.copytree(_train(image_dataset, tmp_path / 'run', tiny_config), ckpt)
    (ckpt / 'checksums.json').unlink()  # an older checkpoint (no checksums), edited by hand
    meta = json.loads((ckpt / 'config.json').read_text())
    del meta['checksums']
    (ckpt / 'config.json').write_text(json.dumps(meta))
    robots = json.loads((ckpt / 'robots.json').read_text())
    robots['arm']['profile']['image_size'] = [8, 8]
    (ckpt / 'robots.json').write_text(json.dumps(robots))
    with pytest.raises(CheckpointError, match=r'robots\.json: robots trained together share one '
                                              r'image size, these differ \(arm \[8, 8\], '
                                              r'gripper \[16, 16\]\)'):
        load_checkpoint(ckpt)
    robots['gripper']['profile']['image_size'] = [8, 8]
    (ckpt / 'robots.json').write_text(json.dumps(robots))
    with pytest.raises(CheckpointError, match=r'robots at image size \[8, 8\], the layout at '
                                              r'\[16, 16\]'):
        load_checkpoint(ckpt)
