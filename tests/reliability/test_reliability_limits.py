"""Issue 30, item 1: every commanded dimension has a limit, or the node refuses to start naming it.

Before: the node limited an action dimension only when its name was a joint name; a profile with
``action.names`` (``c1..c4`` for joints ``a1..a4``) and every ``ptr_core.synthetic`` robot were
served with ±inf limits (109 of 239 commands outside the joint limits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bag_tools.errors import ProfileError
from bag_tools.profile import RobotProfile
from ptr_core.errors import PtrError
from ptr_ros.safety import CommandLimiter, command_limits, load_action_limits

JOINTS = ['a1', 'a2', 'a3', 'a4']
LOWER, UPPER = [-1.0, -1.0, -1.0, -0.8], [1.0, 1.0, 1.0, 0.8]


def profile(action: dict[str, Any], **extra: Any) -> RobotProfile:
    return RobotProfile.from_dict({
        'robot': 'r', 'joints': JOINTS, 'state_topic': '/joint_states', 'rate_hz': 30.0,
        'action': action, 'joint_limits': {'lower': LOWER, 'upper': UPPER}, **extra,
    })


COMMAND = {'source': 'command', 'topic': '/cmd', 'names': ['c1', 'c2', 'c3', 'c4']}


def test_actions_that_are_not_joints_without_limits_are_refused_by_name() -> None:
    p = profile(COMMAND)
    with pytest.raises(PtrError, match=r'c1, c2, c3, c4 .*action\.limits'):
        command_limits(p, p.action_names, 0.0)


def test_action_limits_bound_every_command() -> None:
    p = profile({**COMMAND, 'limits': {'lower': LOWER, 'upper': UPPER}})
    lower, upper = command_limits(p, p.action_names, 0.0)
    np.testing.assert_array_equal(lower, LOWER)
    np.testing.assert_array_equal(upper, UPPER)
    limiter = CommandLimiter(lower, upper, max_step=10.0)
    rng = np.random.default_rng(0)
    for _ in range(200):  # the plans: far outside, both sides
        out = limiter.limit(rng.uniform(-3, 3, (8, 4)), np.zeros(4))
        limiter.published(out)
        assert np.all(out >= lower)
        assert np.all(out <= upper)


def test_a_joint_named_action_takes_the_tighter_of_both_limits() -> None:
    p = profile({'source': 'command', 'topic': '/cmd', 'names': JOINTS,
                 'limits': {'lower': [-2.0, -0.5, -2.0, -2.0], 'upper': [2.0, 2.0, 0.3, 2.0]}})
    lower, upper = command_limits(p, p.action_names, 0.0)
    np.testing.assert_array_equal(lower, [-1.0, -0.5, -1.0, -0.8])
    np.testing.assert_array_equal(upper, [1.0, 1.0, 0.3, 0.8])


def test_a_base_command_without_limits_is_refused() -> None:
    p = profile({'source': 'next_state'}, extra_action=[
        {'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist', 'name': 'base'}])
    with pytest.raises(PtrError, match=r'base\.linear\.x'):
        command_limits(p, p.action_names, 0.0)
    six = {'lower': [-0.5] * 6, 'upper': [0.5] * 6}
    p = profile({'source': 'next_state'}, extra_action=[
        {'topic': '/cmd_vel', 'type': 'geometry_msgs/msg/Twist', 'name': 'base', 'limits': six}])
    lower, upper = command_limits(p, p.action_names, 0.0)
    assert np.isfinite(lower).all()
    assert np.isfinite(upper).all()
    assert upper[-6:].tolist() == [0.5] * 6
    assert RobotProfile.from_dict(p.to_dict()) == p  # the limits survive the checkpoint


@pytest.mark.parametrize(('limits', 'key'), [
    ({'lower': [-1.0] * 3, 'upper': [1.0] * 3}, 'action.limits.lower'),
    ({'lower': [-1.0] * 4, 'upper': [1.0, 1.0, 1.0, float('nan')]}, 'action.limits.upper[3]'),
    ({'lower': [2.0, -1.0, -1.0, -1.0], 'upper': [1.0] * 4}, 'action.limits.lower[0]'),
])
def test_bad_action_limits_name_the_key(limits: dict[str, Any], key: str) -> None:
    with pytest.raises(ProfileError, match=key.replace('[', r'\[').replace(']', r'\]')):
        profile({**COMMAND, 'limits': limits})


def test_the_limits_file_fills_in_and_is_checked(tmp_path: Path) -> None:
    p = profile(COMMAND)
    good = tmp_path / 'limits.yaml'
    good.write_text('c1: [-1, 1]\nc2: [-1, 1]\nc3: [-1, 1]\nc4: [-0.8, 0.8]\n')
    lower, upper = command_limits(p, p.action_names, 0.1, load_action_limits(str(good)))
    np.testing.assert_allclose(lower, [-0.9, -0.9, -0.9, -0.7])
    np.testing.assert_allclose(upper, [0.9, 0.9, 0.9, 0.7])
    for text, match in (('c1: [1, -1]\n', 'lower <= upper'), ('c1: [-.inf, 1]\n', 'finite'),
                        ('- c1\n', 'expected a mapping'), ('zz: [-1, 1]\n', "'zz' is not")):
        bad = tmp_path / 'bad.yaml'
        bad.write_text(text)
        with pytest.raises(PtrError, match=match):
            command_limits(p, p.action_names, 0.0, load_action_limits(str(bad)))
    with pytest.raises(PtrError, match='cannot read action_limits_file'):
        load_action_limits(str(tmp_path / 'missing.yaml'))


# -- the real node (rclpy) -------------------------------------------------------------------


@pytest.fixture(scope='module')
def unlimited_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic checkpoint whose profile's actions (``arm_cmd*``) carry no limits, as every
    synthetic robot's did before the fix."""
    pytest.importorskip('torch')
    from ptr_core.configuration import load_config
    from ptr_core.synthetic import make_synthetic_dataset
    from ptr_core.trainer import train

    tmp = tmp_path_factory.mktemp('unlimited')
    data = tmp / 'ds'
    make_synthetic_dataset(data, robot='arm', episodes=3, length=12, state_dim=3, seed=4)
    manifest = json.loads((data / 'manifest.json').read_text())
    del manifest['robots']['arm']['profile']['action']['limits']
    (data / 'manifest.json').write_text(json.dumps(manifest))
    result = train(load_config(None, [
        'steps=1', 'batch_size=4', 'device=cpu', 'log_every=1', 'val_every=0',
        'policy.chunk_length=4', 'data.obs_horizon=2', 'data.val_fraction=0.0',
        'data.num_workers=0', f"data.datasets=['{data}']", f"out_dir='{tmp / 'run'}'",
        'policy.unet_dims=[16, 32]',
    ]))
    assert result.final is not None
    return Path(result.final)


def _start_node(checkpoint: Path, **params: Any) -> Any:
    rclpy = pytest.importorskip('rclpy', reason='rclpy not installed')
    from rclpy.parameter import Parameter

    from ptr_ros.policy_node import PolicyNode

    context = rclpy.context.Context()
    rclpy.init(context=context)
    overrides = [Parameter('checkpoint', value=str(checkpoint)),
                 Parameter('torch_threads', value=1)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    try:
        node = PolicyNode(context=context, parameter_overrides=overrides)
    except BaseException:
        context.try_shutdown()
        raise
    bounds = (node.lower.copy(), node.upper.copy())
    node.destroy_node()
    context.try_shutdown()
    return bounds


@pytest.mark.ros
def test_the_node_refuses_to_serve_unlimited_actions(unlimited_checkpoint: Path,
                                                      tmp_path: Path) -> None:
    with pytest.raises(PtrError, match='arm_cmd0, arm_cmd1, arm_cmd2'):
        _start_node(unlimited_checkpoint)
    limits = tmp_path / 'limits.yaml'
    limits.write_text('arm_cmd0: [-1, 1]\narm_cmd1: [-1, 1]\narm_cmd2: [-0.5, 0.5]\n')
    lower, upper = _start_node(unlimited_checkpoint, action_limits_file=str(limits))
    assert lower.tolist() == [-1.0, -1.0, -0.5]
    assert upper.tolist() == [1.0, 1.0, 0.5]
