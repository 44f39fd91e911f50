"""policy_node's parameters: described, ranged, loaded from config/policy.yaml, enforced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rosharness import REPO, SimRun

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')
pytest.importorskip('torch')

import rclpy
from rcl_interfaces.msg import ParameterType
from rclpy.exceptions import InvalidParameterValueException
from rclpy.parameter import Parameter

from ptr_core.errors import PtrError
from ptr_ros.policy_node import PolicyNode

pytestmark = pytest.mark.ros

NUMERIC = (ParameterType.PARAMETER_INTEGER, ParameterType.PARAMETER_DOUBLE)


@pytest.fixture
def context() -> Iterator[Any]:
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx, args=['--ros-args', '--params-file',
                                  str(REPO / 'config' / 'policy.yaml')])
    try:
        yield ctx
    finally:
        ctx.try_shutdown()


def make(context: Any, sim_run: SimRun, **params: Any) -> PolicyNode:
    overrides = [Parameter('checkpoint', value=str(sim_run.checkpoint)),
                 Parameter('torch_threads', value=1)]
    overrides += [Parameter(k, value=v) for k, v in params.items()]
    return PolicyNode(context=context, parameter_overrides=overrides)


def test_every_parameter_is_described_and_numbers_are_ranged(context: Any,
                                                             sim_run: SimRun) -> None:
    node = make(context, sim_run)
    try:
        names = sorted(node._parameters)
        names.remove('use_sim_time')  # declared by rclpy itself
        descriptors = node.describe_parameters(names)
        assert len(names) >= 20
        for name, desc in zip(names, descriptors):
            assert len(desc.description) > 10, name
            assert desc.read_only, name
            if desc.type in NUMERIC:
                assert desc.integer_range or desc.floating_point_range, name
        assert 'cameras.front.topic' in names
        assert node.get_parameter('cameras.front.topic').value == '/camera/front/image_raw'
    finally:
        node.destroy_node()


def test_params_file_values_reach_the_node(context: Any, sim_run: SimRun) -> None:
    node = make(context, sim_run)
    try:
        # From config/policy.yaml (the /** section) ...
        assert node.get_parameter('max_step_change').value == 0.05
        assert node.get_parameter('camera_timeout_s').value == 0.5
        assert node.params.interface == 'trajectory'
        # ... and the checkpoint: the profile's rate, K = L / 2, its joints as the command names.
        assert node.params.rate_hz == 10.0
        assert node.params.execute_steps == node.runner.chunk_length // 2
        assert node.action_names == ['joint_1', 'joint_2', 'joint_3']
        assert node.params.state_topic == '/joint_states'
        assert node.params.execution.ensemble is True  # temporal_ensembling: true
        # the tick asks for real-time (ros2_control's priority) unless told otherwise, in the
        # declared default and in the shipped file alike
        assert node.params.control_priority == 50
        assert node.get_parameter('cadence_log').value == ''
    finally:
        node.destroy_node()


def test_the_tick_asks_for_real_time_without_a_params_file(sim_run: SimRun) -> None:
    """The declared default, not only the shipped file: ros2_control's priority 50."""
    ctx = rclpy.context.Context()
    rclpy.init(context=ctx)
    try:
        node = make(ctx, sim_run)
        try:
            assert node.params.control_priority == 50
            assert node.params.cadence_log == ''
        finally:
            node.destroy_node()
    finally:
        ctx.try_shutdown()


def test_out_of_range_and_unknown_choices_are_refused(context: Any, sim_run: SimRun) -> None:
    with pytest.raises(InvalidParameterValueException):
        make(context, sim_run, execute_steps=0)
    with pytest.raises(InvalidParameterValueException):
        make(context, sim_run, max_step_change=-1.0)
    with pytest.raises(ValueError, match='one of trajectory, forward'):
        make(context, sim_run, command_interface='effort')
    with pytest.raises(PtrError, match="no robot 'ur5e'"):
        make(context, sim_run, robot='ur5e')


def test_missing_checkpoint_is_a_one_line_error(context: Any, tmp_path: Path) -> None:
    with pytest.raises(PtrError, match='no_such'):
        PolicyNode(context=context, parameter_overrides=[
            Parameter('checkpoint', value=str(tmp_path / 'no_such'))])
