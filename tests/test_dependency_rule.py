"""The dependency rule (README, "Layout") is enforced by the linter the test command runs.

``bag_tools`` never imports torch, rclpy or a ``ptr_*`` package; ``ptr_core`` never imports
rclpy, ``ptr_ros``, ``ptr_sim`` or ``ptr_cli``; ``ptr_sim`` never imports rclpy, ``ptr_ros`` or
``ptr_cli``; inside ``ptr_core``, ``policies`` never imports ``weighting`` or the trainer. Each
layer's ``ruff.toml`` bans those imports (TID251); these tests run ruff on the tree and on a
temporary copy of a layer with a forbidden import planted in it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ('bag_tools', 'ptr_core', 'ptr_sim')

pytest.importorskip('ruff', reason='ruff not installed (pip install -e .[dev])')


def ruff(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, '-m', 'ruff', 'check', '--no-cache', '--select', 'TID251',
         '--output-format', 'concise', *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_the_tree_obeys_the_rule() -> None:
    res = ruff(*LAYERS, cwd=REPO)
    assert res.returncode == 0, res.stdout + res.stderr


def plant(tmp_path: Path, layer: str, source: str) -> Path:
    """A copy of the root config and every ``ruff.toml`` down to ``layer`` (a package path such
    as ``ptr_core/policies``), with ``source`` as a module in it."""
    shutil.copy(REPO / 'pyproject.toml', tmp_path / 'pyproject.toml')
    here = Path()
    for part in Path(layer).parts:
        here /= part
        (tmp_path / here).mkdir()
        (tmp_path / here / '__init__.py').write_text('')
        if (REPO / here / 'ruff.toml').exists():
            shutil.copy(REPO / here / 'ruff.toml', tmp_path / here / 'ruff.toml')
    path = tmp_path / layer / 'planted.py'
    path.write_text(source)
    return path


@pytest.mark.parametrize(('layer', 'statement', 'banned'), [
    ('bag_tools', 'import torch', 'torch'),
    ('bag_tools', 'from rclpy.node import Node', 'rclpy'),
    ('bag_tools', 'from ptr_core.errors import PtrError', 'ptr_core'),
    ('ptr_core', 'import rclpy', 'rclpy'),
    ('ptr_core', 'from ptr_ros import policy_node', 'ptr_ros'),
    ('ptr_core', 'from ptr_sim.evaluate import evaluate', 'ptr_sim'),
    ('ptr_core', 'from ptr_cli.main import main', 'ptr_cli'),
    ('ptr_sim', 'from ptr_ros.policy_node import PolicyNode', 'ptr_ros'),
    # Inside ptr_core: the policies own their output type; weighting reads it, not the reverse.
    ('ptr_core/policies', 'from ptr_core.weighting.base import WeightOutput',
     'ptr_core.weighting'),
    ('ptr_core/policies', 'import rclpy', 'rclpy'),
])
def test_a_planted_forbidden_import_fails(
    tmp_path: Path, layer: str, statement: str, banned: str
) -> None:
    # Inside a function, where a lazy import would hide from a reader.
    path = plant(tmp_path, layer, f'def load() -> None:\n    {statement}\n')
    res = ruff(path, cwd=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    assert 'TID251' in res.stdout
    owner = layer.replace('/', '.') if '.' in banned else layer.split('/')[0]
    assert f'`{banned}` is banned: {owner} never imports {banned}' in res.stdout


def test_allowed_imports_pass(tmp_path: Path) -> None:
    path = plant(tmp_path, 'ptr_core', 'import numpy\nimport torch\n\nfrom bag_tools import '
                 'dataset\n\n__all__ = ["dataset", "numpy", "torch"]\n')
    res = ruff(path, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
