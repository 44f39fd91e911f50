"""The policy node's safety layer, without ROS: gate states, watchdog, clamping, counting."""

from __future__ import annotations

import numpy as np
import pytest

from ptr_core.errors import PtrError
from ptr_ros.safety import NodeState, RejectionCounter, SafetyGate, clamp_trajectory


def test_gate_starts_disabled_even_with_fresh_observations() -> None:
    gate = SafetyGate({'joint_states': 0.2, 'camera/front': 0.5})
    gate.mark('joint_states', 10.0)
    gate.mark('camera/front', 10.0)
    status = gate.evaluate(10.01)
    assert status.state is NodeState.DISABLED
    assert '~/enable' in status.reason


def test_gate_waits_for_first_message_of_every_observation() -> None:
    gate = SafetyGate({'joint_states': 0.2, 'camera/front': 0.5})
    gate.enable()
    assert gate.evaluate(0.0).state is NodeState.WAITING
    gate.mark('joint_states', 1.0)
    status = gate.evaluate(1.0)
    assert status.state is NodeState.WAITING
    assert 'camera/front' in status.reason
    assert 'joint_states' not in status.reason
    assert status.ages == {'joint_states': 0.0, 'camera/front': None}
    gate.mark('camera/front', 1.05)
    assert gate.evaluate(1.1).state is NodeState.RUNNING


def test_gate_goes_stale_per_observation_timeout_and_recovers() -> None:
    gate = SafetyGate({'joint_states': 0.2, 'camera/front': 0.5})
    gate.enable()
    gate.mark('joint_states', 0.0)
    gate.mark('camera/front', 0.0)
    assert gate.evaluate(0.19).state is NodeState.RUNNING
    status = gate.evaluate(0.3)  # joint states 0.3 s old > 0.2 s; camera 0.3 s < 0.5 s
    assert status.state is NodeState.STALE
    assert 'joint_states' in status.reason
    assert 'camera/front' not in status.reason
    gate.mark('joint_states', 0.3)
    assert gate.evaluate(0.31).state is NodeState.RUNNING
    assert gate.evaluate(0.6).state is NodeState.STALE  # now both are old
    gate.mark('joint_states', 0.6)
    gate.mark('camera/front', 0.6)
    assert gate.evaluate(0.61).state is NodeState.RUNNING


def test_stop_disables_at_once_and_enable_rearms() -> None:
    gate = SafetyGate({'joint_states': 1.0})
    gate.enable()
    gate.mark('joint_states', 0.0)
    assert gate.evaluate(0.1).state is NodeState.RUNNING
    gate.stop()
    assert gate.evaluate(0.1).state is NodeState.DISABLED
    gate.enable()
    assert gate.evaluate(0.1).state is NodeState.RUNNING


def test_gate_refuses_bad_timeouts_and_unknown_observations() -> None:
    with pytest.raises(PtrError, match=r"'camera/front'.*> 0"):
        SafetyGate({'camera/front': 0.0})
    gate = SafetyGate({'joint_states': 1.0})
    with pytest.raises(PtrError, match='not watched'):
        gate.mark('camera/wrist', 0.0)


def test_clamp_limits_each_step_relative_to_the_previous_point() -> None:
    points = np.array([[1.0, -1.0], [1.0, -1.0], [1.0, -1.0]])
    out = clamp_trajectory(points, [0.0, 0.0], lower=[-2, -2], upper=[2, 2], max_step=0.1)
    np.testing.assert_allclose(out, [[0.1, -0.1], [0.2, -0.2], [0.3, -0.3]])


def test_clamp_keeps_points_inside_joint_limits() -> None:
    points = np.array([[0.55, 0.0], [0.7, -0.9]])
    out = clamp_trajectory(points, [0.5, -0.4], lower=[-1, -0.5], upper=[0.6, 1], max_step=0.3)
    np.testing.assert_allclose(out, [[0.55, -0.1], [0.6, -0.4]])
    assert np.all(out <= [0.6, 1])
    assert np.all(out >= [-1, -0.5])


def test_clamp_never_jumps_when_starting_outside_the_limits() -> None:
    # The arm was pushed past its limit by hand: come back at most max_step per step.
    out = clamp_trajectory([[0.0], [0.0]], [1.5], lower=[-1], upper=[1], max_step=0.2)
    np.testing.assert_allclose(out[:, 0], [1.3, 1.1])


def test_clamp_holds_nan_targets_and_checks_shapes() -> None:
    out = clamp_trajectory([[np.nan, 0.5]], [0.2, 0.0], lower=-1, upper=1, max_step=1.0)
    np.testing.assert_allclose(out, [[0.2, 0.5]])
    with pytest.raises(PtrError, match=r'3 values.*2'):
        clamp_trajectory([[0.0, 0.0, 0.0]], [0.0, 0.0], lower=-1, upper=1, max_step=1.0)


def test_random_plans_always_respect_limits_and_step_bound() -> None:
    rng = np.random.default_rng(0)
    lower, upper, step = np.array([-1.0, -2.0, 0.0]), np.array([1.0, 0.5, 3.0]), 0.07
    prev = np.array([0.0, -1.0, 1.0])
    for _ in range(200):
        plan = rng.normal(0, 3, size=(5, 3))
        out = clamp_trajectory(plan, prev, lower=lower, upper=upper, max_step=step)
        steps = np.abs(np.diff(np.vstack([prev, out]), axis=0))
        assert np.all(steps <= step + 1e-12)
        assert np.all(out >= lower - 1e-12)
        assert np.all(out <= upper + 1e-12)
        prev = out[0]


def test_rejection_counter_counts_by_source_and_reason() -> None:
    counter = RejectionCounter()
    counter.add('joint_states', 'wrong joint set')
    counter.add('joint_states', 'wrong joint set')
    counter.add('camera/front', 'image size 10x10')
    assert counter.total == 3
    assert counter.by_source() == {'joint_states': 2, 'camera/front': 1}
    assert counter.items() == [('camera/front', 'image size 10x10', 1),
                               ('joint_states', 'wrong joint set', 2)]
