"""The issue's out-of-limit numbers, replayed on the node's command limiter (no ROS needed;
tests/ros/test_safety.py runs the same paths through a real node over DDS)."""

from __future__ import annotations

import numpy as np
import pytest

from ptr_ros.safety import CommandLimiter, SafetyFaultError, SafetyGate, limit_violation

LOWER, UPPER = np.full(4, -2.0), np.full(4, 2.0)
STATE = np.array([100.0, -100.0, 50.0, 3.0])  # measured, far outside ±2


def test_the_implausible_state_faults_the_node() -> None:
    why = limit_violation(['j1', 'j2', 'j3', 'j4'], STATE, lower=LOWER, upper=UPPER,
                          tolerance=0.05)
    assert 'j1 = 100' in why
    assert 'j4 = 3' in why
    gate = SafetyGate({'joint_states': 1.0})
    gate.enable()
    gate.mark('joint_states', 0.0)
    gate.fault(why)
    assert gate.evaluate(0.1).state.value == 'fault'  # nothing is published until ~/enable


def test_no_point_outside_the_limits_from_that_state() -> None:
    """Before: [99.95, -99.95, 49.95, 2.95] was published (back towards the range by the step)."""
    limiter = CommandLimiter(LOWER, UPPER, max_step=0.05)
    for plan in (np.tile(STATE, (16, 1)), np.zeros((16, 4)), np.full((16, 4), 1e6)):
        out = limiter.limit(plan, STATE)
        assert np.all(out >= LOWER)
        assert np.all(out <= UPPER)


def test_no_stale_resume_jump() -> None:
    """Before: across stale -> automatic resume two consecutive commands differed by 99.8."""
    limiter = CommandLimiter(LOWER, UPPER, max_step=0.05)
    published = []
    out = limiter.limit(np.zeros((1, 4)), STATE)  # ramps from the limit, not from 100
    limiter.published(out)
    published.append(out[0])
    limiter.hold()  # stale
    with pytest.raises(SafetyFaultError):  # resumes with the arm far away: fault, not a jump
        limiter.limit(np.zeros((1, 4)), np.array([-1.9, 1.9, -1.9, -1.9]))
    out = limiter.limit(np.zeros((1, 4)), out[0])  # the arm where it was: resumes
    limiter.published(out)
    published.append(out[0])
    assert np.abs(np.diff(published, axis=0)).max() <= 0.05 + 1e-12
