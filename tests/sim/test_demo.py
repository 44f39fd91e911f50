"""ptr_sim.demo: nodes start through ptr_ros' entry points; the library never installs packages."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from ptr_core.errors import PtrError
from ptr_sim.demo import DemoOptions, _node_command

REPO = Path(__file__).resolve().parents[2]


def test_nodes_start_through_their_console_scripts_or_module_main() -> None:
    script = Path(sys.executable).parent / 'policy_node'
    if script.exists():
        assert _node_command('policy_node', 'ptr_ros.policy_node') == [str(script)]
    fallback = _node_command('no_such_node_script', 'ptr_ros.policy_node')
    assert fallback == [sys.executable, '-m', 'ptr_ros.policy_node']


def test_no_library_code_runs_pip() -> None:
    offenders = []
    for root in ('bag_tools', 'ptr_core', 'ptr_ros', 'ptr_sim', 'ptr_cli'):
        for path in sorted((REPO / root).rglob('*.py')):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value == 'pip':  # [..., 'pip', ...]
                    offenders.append(f'{path.relative_to(REPO)}:{node.lineno}')
    assert offenders == []


def test_options_are_validated() -> None:
    with pytest.raises(PtrError, match='ros_seconds'):
        DemoOptions(ros_seconds=0.0)
