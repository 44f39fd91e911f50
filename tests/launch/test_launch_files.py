"""The launch files without launch installed: they compile, and every argument is described.

The arguments are read from the source (``DeclareLaunchArgument('name', ..., description=...)``)
so this runs anywhere; ``test_*_launch.py`` beside it start the files with launch_pytest.
"""

from __future__ import annotations

import ast
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from ptr_core.errors import PtrError
from ptr_ros.commands import plan_training, split_list

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / 'launch'


def declared(path: Path) -> dict[str, dict[str, object]]:
    """``{name: {keyword: literal or '<expr>'}}`` of every DeclareLaunchArgument call."""
    out: dict[str, dict[str, object]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'DeclareLaunchArgument':
            name = ast.literal_eval(node.args[0])
            kws: dict[str, object] = {}
            for kw in node.keywords:
                try:
                    kws[str(kw.arg)] = ast.literal_eval(kw.value)
                except ValueError:
                    kws[str(kw.arg)] = '<expr>'
            out[name] = kws
    return out


@pytest.mark.parametrize('name', ['policy.launch.py', 'train.launch.py'])
def test_launch_file_compiles_and_describes_every_argument(name: str, tmp_path: Path) -> None:
    path = LAUNCH / name
    py_compile.compile(str(path), cfile=str(tmp_path / 'out.pyc'), doraise=True)
    args = declared(path)
    assert args
    for arg, kws in args.items():
        text = kws.get('description')
        assert isinstance(text, str), f'{name}: argument {arg} has no description'
        assert len(text) > 10, f'{name}: argument {arg}: {text!r}'
    source = path.read_text()
    assert 'def generate_launch_description()' in source
    for name_used in ('LaunchConfiguration', 'FindPackageShare', 'PathJoinSubstitution'):
        assert name_used in source


def test_policy_launch_arguments() -> None:
    args = declared(LAUNCH / 'policy.launch.py')
    assert {'checkpoint', 'params_file', 'sim', 'device', 'command_interface'} <= set(args)
    assert 'default_value' not in args['checkpoint']  # required
    assert args['sim']['default_value'] == 'false'
    assert args['sim']['choices'] == ['true', 'false']
    # A managed node: it configures and activates itself unless a manager is to drive it.
    assert args['autostart']['default_value'] == 'true'
    assert args['autostart']['choices'] == ['true', 'false']
    source = (LAUNCH / 'policy.launch.py').read_text()
    assert "executable='policy_node'" in source
    assert "executable='sim_arm_node'" in source
    assert "IfCondition(LaunchConfiguration('sim'))" in source
    assert "'autostart': LaunchConfiguration('autostart')" in source


def test_train_launch_arguments() -> None:
    args = declared(LAUNCH / 'train.launch.py')
    assert {'config', 'datasets', 'bags', 'profile', 'output', 'device', 'gpus'} <= set(args)
    assert args['gpus']['default_value'] == '1'


def test_parameter_files_are_installed_and_loadable() -> None:
    import yaml

    setup = (REPO / 'setup.py').read_text()
    assert "glob('config/*.yaml')" in setup
    assert "glob('launch/*.launch.py')" in setup
    for name in ('policy.yaml', 'sim_arm.yaml'):
        data = yaml.safe_load((REPO / 'config' / name).read_text())
        params = data['/**']['ros__parameters']
        assert params
    policy = yaml.safe_load((REPO / 'config' / 'policy.yaml').read_text())['/**']
    assert policy['ros__parameters']['command_interface'] == 'trajectory'


def test_split_list() -> None:
    assert split_list('a b,c  d,') == ['a', 'b', 'c', 'd']
    assert split_list('') == []


def test_plan_trains_on_datasets_with_one_process() -> None:
    plan = plan_training(config='c.yaml', output='runs/x', datasets=['d1', 'd2'], device='cpu',
                         python='py')
    assert plan.ingest is None
    assert plan.train == ['py', '-m', 'ptr_cli.main', 'train', '--config', 'c.yaml',
                          '--out', 'runs/x', '--no-progress', '--dataset', 'd1', '--dataset',
                          'd2', '--set', 'device=cpu']


def test_plan_ingests_bags_first_and_uses_torchrun_for_several_gpus() -> None:
    plan = plan_training(config='c.yaml', output='runs/x', bags=['b1', 'b2'], profile='p.yaml',
                         gpus=4, device='cuda', python='py', extra=['--set', 'steps=5'])
    assert plan.ingest == ['py', '-m', 'ptr_cli.main', 'ingest', 'b1', 'b2', '--profile',
                           'p.yaml', '--out', 'runs/x/dataset', '--no-progress']
    assert plan.train[:5] == ['py', '-m', 'torch.distributed.run', '--standalone',
                              '--nproc_per_node=4']
    assert plan.train[5:8] == ['-m', 'ptr_cli.main', 'train']
    assert plan.train[-2:] == ['--set', 'steps=5']
    assert plan.datasets == ['runs/x/dataset']


@pytest.mark.parametrize(('kwargs', 'match'), [
    ({'bags': ['b']}, 'profile'),
    ({}, 'datasets'),
    ({'datasets': ['d'], 'gpus': 0}, 'gpus'),
    ({'datasets': ['d'], 'config': ''}, 'config'),
])
def test_plan_refuses_incomplete_arguments(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {'config': 'c.yaml', 'output': 'o', **kwargs}
    with pytest.raises(PtrError, match=match):
        plan_training(**args)  # type: ignore[arg-type]


def test_planned_commands_parse(tmp_path: Path) -> None:
    """The planned ingest and train command lines are accepted by the real CLI (``--help``)."""
    plan = plan_training(config=str(REPO / 'config' / 'train' / 'debug.yaml'),
                         output=str(tmp_path / 'run'), bags=['x.bag'], profile='p.yaml')
    assert plan.ingest is not None
    for cmd in (plan.ingest, plan.train):
        sub = cmd[cmd.index('ptr_cli.main') + 1]
        proc = subprocess.run([sys.executable, '-m', 'ptr_cli.main', sub, '--help'],
                              cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        for flag in (a for a in cmd if a.startswith('--')):
            assert flag in proc.stdout, f'ptr {sub} has no {flag}'
