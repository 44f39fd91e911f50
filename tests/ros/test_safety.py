"""The policy node's safety layer, without ROS: gate states, watchdog, clamping, counting."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import simdata

from ptr_core.errors import PtrError
from ptr_ros.safety import (
    CommandLimiter,
    NodeState,
    RejectionCounter,
    SafetyFaultError,
    SafetyGate,
    clamp_trajectory,
    limit_violation,
)


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


def test_clamp_never_leaves_the_limits_even_from_outside() -> None:
    # The limits are absolute: a previous point past them starts at the limit, then steps.
    out = clamp_trajectory([[0.0], [0.0]], [1.5], lower=[-1], upper=[1], max_step=0.2)
    np.testing.assert_allclose(out[:, 0], [0.8, 0.6])


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


# -- CommandLimiter: what the node may publish ----------------------------------------------
LO4, HI4 = np.full(4, -2.0), np.full(4, 2.0)


def test_limits_are_absolute_whatever_the_measured_state() -> None:
    """The issue's numbers: state [100, -100, 50, 3], limits ±2. Before, the node published
    [99.95, -99.95, 49.95, 2.95] (moving back by max_step); now every point is inside ±2 (and
    the node faults on such a state before it gets here, see limit_violation)."""
    limiter = CommandLimiter(LO4, HI4, max_step=0.05)
    state = np.array([100.0, -100.0, 50.0, 3.0])
    out = limiter.limit(np.tile(state, (8, 1)), state)
    assert np.all(np.abs(out) <= 2.0)
    np.testing.assert_allclose(out[0], [2.0, -2.0, 2.0, 2.0])
    why = limit_violation(['a', 'b', 'c', 'd'], state, lower=LO4, upper=HI4, tolerance=0.05)
    assert why.startswith('measured state outside the joint limits by more than 0.05: a = 100')
    assert limit_violation(['a'] * 4, [2.04, -2.04, 0, 0], lower=LO4, upper=HI4,
                           tolerance=0.05) == ''


def test_step_bound_is_relative_to_the_last_published_command() -> None:
    limiter = CommandLimiter(LO4, HI4, max_step=0.1)
    measured = np.zeros(4)
    first = limiter.limit(np.ones((3, 4)), measured)
    np.testing.assert_allclose(first[:, 0], [0.1, 0.2, 0.3])
    limiter.published(first)
    # not published: the next bound is still relative to what was
    limiter.limit(np.full((1, 4), -1.0), measured)
    nxt = limiter.limit(np.ones((1, 4)), measured)
    np.testing.assert_allclose(nxt[0], 0.2)


def test_a_hold_ramps_in_from_the_measured_state_or_faults() -> None:
    limiter = CommandLimiter(LO4, HI4, max_step=0.1)
    limiter.published(np.full((1, 4), 1.0))
    limiter.hold()  # stale: the arm drifted 0.15 while held (less than 2 steps)
    out = limiter.limit(np.full((1, 4), -2.0), np.full(4, 1.15))
    np.testing.assert_allclose(out[0], 1.05)  # within a step of both
    limiter.published(out)
    limiter.hold()  # the stale -> resume jump: the arm is now 99.8 away
    with pytest.raises(SafetyFaultError, match='moved'):
        limiter.limit(np.zeros((1, 4)), np.full(4, -1.5))
    limiter.forget()  # a new ~/enable after the fault: from the measured state only
    out = limiter.limit(np.zeros((1, 4)), np.full(4, -1.5))
    np.testing.assert_allclose(out[0], -1.4)


def test_the_acceleration_bound_ramps_in_from_rest() -> None:
    limiter = CommandLimiter(LO4[:1], HI4[:1], max_step=0.1, max_accel=0.02)
    out = limiter.limit(np.full((8, 1), 2.0), np.zeros(1))
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], out[:, 0]])),
                               [0.02, 0.04, 0.06, 0.08, 0.1, 0.1, 0.1, 0.1])
    limiter.published(out[:1])
    nxt = limiter.limit(np.full((1, 1), -2.0), np.zeros(1))  # reversing: decelerate first
    assert nxt[0, 0] == pytest.approx(0.02)


def test_random_sequences_never_leave_the_bounds() -> None:
    """Random plans, holds, drifts and measured states far outside the limits: every point
    published is inside the limits and within a step of the point before it; a first point
    within a step of the last published first point -- after a hold, of the last published
    command's span and of the (clamped) measured state; after forget, of the measured state."""
    rng = np.random.default_rng(0)
    lo, hi, step = np.array([-1.0, -2.0, 0.0]), np.array([1.0, 0.5, 3.0]), 0.07
    limiter = CommandLimiter(lo, hi, max_step=step, max_accel=0.03)
    last, span, held, faults = None, None, True, 0
    for _ in range(2000):
        event = rng.random()
        if event < 0.1:
            limiter.hold()
            held = True
        elif event < 0.13:
            limiter.forget()
            last, span, held = None, None, True
        measured = rng.normal(0, 5, 3) if rng.random() < 0.1 else (
            last if last is not None else np.zeros(3)) + rng.normal(0, 0.05, 3)
        try:
            out = limiter.limit(rng.normal(0, 3, size=(4, 3)), measured)
        except SafetyFaultError:
            faults += 1
            limiter.forget()
            last, span, held = None, None, True
            continue
        assert np.all(out >= lo - 1e-12)
        assert np.all(out <= hi + 1e-12)
        assert np.all(np.abs(np.diff(out, axis=0)) <= step + 1e-12)
        if held:
            assert np.all(np.abs(out[0] - np.clip(measured, lo, hi)) <= step + 1e-12)
            if span is not None:
                assert np.all(out[0] >= span[0] - step - 1e-12)
                assert np.all(out[0] <= span[1] + step + 1e-12)
        else:
            assert np.all(np.abs(out[0] - last) <= step + 1e-12)
        limiter.published(out)
        last, span, held = out[0], (out.min(axis=0), out.max(axis=0)), False
    assert faults > 10  # the fault path ran too


def test_nan_actions_hold_or_fault_never_publish_nan() -> None:
    limiter = CommandLimiter(LO4[:2], HI4[:2], max_step=0.1)
    out = limiter.limit([[np.nan, 1.0]], [0.5, np.nan])  # joint 0 known, action 1 is no joint
    np.testing.assert_allclose(out, [[0.5, 1.0]])
    with pytest.raises(SafetyFaultError, match='NaN'):
        CommandLimiter(LO4[:1], HI4[:1], max_step=0.1).limit([[np.nan]], [np.nan])


def test_fault_latches_until_enable() -> None:
    gate = SafetyGate({'joint_states': 1.0})
    gate.enable()
    gate.mark('joint_states', 0.0)
    gate.fault('measured state outside the joint limits')
    status = gate.evaluate(0.1)
    assert status.state is NodeState.FAULT
    assert 'outside the joint limits; call ~/enable' in status.reason
    gate.stop()
    assert gate.evaluate(0.1).state is NodeState.FAULT
    gate.enable()
    assert gate.evaluate(0.1).state is NodeState.RUNNING


# -- the node, over DDS: a scripted arm publishes the measured state ------------------------
class ScriptedArm:
    """Joint states and camera frames at 20 Hz from a test thread; ``follow`` makes the arm
    go where the first point of each command says (a perfect controller)."""

    def __init__(self, probe: Any, names: dict[str, str], position: list[float]) -> None:
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState
        from trajectory_msgs.msg import JointTrajectory

        self.position = np.array(position, dtype=np.float64)
        self.publishing = True
        self.follow = False
        self.split: bool | None = None  # True: two messages; False: the second driver is silent
        self._js = probe.node.create_publisher(JointState, names['joint_states'],
                                               qos_profile_sensor_data)
        self._img = probe.node.create_publisher(Image, names['camera'], qos_profile_sensor_data)
        h, w = simdata.SOURCE_SIZE
        self._frame = Image(height=h, width=w, encoding='rgb8', step=3 * w, data=bytes(3 * h * w))
        self._msg_type = JointState
        probe.node.create_subscription(JointTrajectory, names['trajectory'], self._on_command, 10)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_command(self, msg: Any) -> None:
        if self.follow:
            self.position = np.array(msg.points[0].positions, dtype=np.float64)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            if self.publishing:
                joints, q = list(simdata.JOINTS), self.position.tolist()
                if self.split is None:
                    self._js.publish(self._msg_type(name=joints, position=q))
                else:  # arm and gripper drivers: separate messages on one topic
                    self._js.publish(self._msg_type(name=joints[:2], position=q[:2]))
                    if self.split:
                        self._js.publish(self._msg_type(name=joints[2:], position=q[2:]))
                self._img.publish(self._frame)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.mark.ros
def test_node_never_commands_past_a_limit_or_a_step(
    sim_run: Any, launch_node: Any, probe: Any, names: dict[str, str],
) -> None:
    """Each path of the issue through one node: enable, an implausible state (fault, latched
    until ~/enable), stale -> resume (ramps in; an arm moved while held faults instead of the
    old 99.8 jump), ~/stop -> ~/enable. Across all of it every published point is inside the
    limits and within max_step of the previous published point -- or, for the first command
    after an operator's ~/enable that followed a fault, of the measured state."""
    pytest.importorskip('rclpy')
    from diagnostic_msgs.msg import DiagnosticArray
    from rosharness import wait_for
    from std_srvs.srv import SetBool, Trigger
    from trajectory_msgs.msg import JointTrajectory

    step, limit = 0.02, simdata.LIMIT
    policy = launch_node('ptr_ros.policy_node', {
        'checkpoint': str(sim_run.checkpoint), 'torch_threads': 1,
        'joint_states_topic': names['joint_states'], 'cameras.front.topic': names['camera'],
        'joint_states_timeout_s': 0.4, 'camera_timeout_s': 0.5,
        'command_topic': names['trajectory'], 'max_step_change': step, 'execute_steps': 4,
        'joint_limit_tolerance': 0.05, 'diagnostics_rate_hz': 5.0,
    }, names['policy'])
    probe.record('command', JointTrajectory, names['trajectory'])
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    arm = ScriptedArm(probe, names, [1.0, -1.0, 0.5])
    commands = lambda: probe.recorded.get('command')  # noqa: E731
    enable = f'/{names["policy"]}/enable'

    def state(want: str, timeout: float = 30.0) -> dict[str, str]:
        def check() -> dict[str, str] | None:
            assert policy.alive(), policy.output()[-3000:]
            diag = probe.latest_diagnostics(names['policy'])
            return diag if diag is not None and diag['state'] == want else None
        got: dict[str, str] = wait_for(check, timeout, f'state {want}')
        return got

    def more(n: int) -> None:
        have = len(commands())
        wait_for(lambda: len(commands()) >= have + n, 60, f'{n} more commands')

    def quiet(seconds: float) -> None:
        have = len(commands())
        time.sleep(seconds)
        assert len(commands()) == have, 'published while it must hold'

    try:
        state('disabled', timeout=120)
        arm.follow = True
        assert probe.call(SetBool, enable, SetBool.Request(data=True)).success
        more(10)
        first = np.array(commands()[0][1].points[0].positions)
        assert np.abs(first - [1.0, -1.0, 0.5]).max() <= step + 1e-9  # ramps in from the arm

        # The implausible state (outside ±1.5 by far): fault at once, latched.
        arm.follow = False
        arm.position = np.array([100.0, -100.0, 50.0])
        diag = state('fault', timeout=10)
        assert 'outside the joint limits' in diag['reason']
        faulted_at = len(commands())
        refused = probe.call(SetBool, enable, SetBool.Request(data=True))
        assert not refused.success  # still outside: ~/enable is refused, the fault stays
        assert 'outside the joint limits' in refused.message
        quiet(0.5)
        arm.position = np.array([1.2, -1.2, 0.3])  # back inside: still latched
        quiet(1.0)
        assert probe.latest_diagnostics(names['policy'])['state'] == 'fault'
        assert probe.call(SetBool, enable, SetBool.Request(data=True)).success
        arm.follow = True
        more(5)
        after = np.array(commands()[faulted_at][1].points[0].positions)
        assert np.abs(after - [1.2, -1.2, 0.3]).max() <= step + 1e-9
        refreshed = faulted_at  # the one allowed restart point (after an operator's enable)

        # Stale -> resume where the arm was: ramps on within the step bound.
        arm.publishing = False
        state('stale', timeout=10)
        quiet(0.5)
        arm.publishing = True
        state('running', timeout=10)
        more(5)

        # Stale -> resume with the arm moved 0.8 while held: a fault, not a jump.
        arm.publishing = False
        state('stale', timeout=10)
        arm.follow = False
        arm.position = arm.position - np.sign(arm.position) * [0.8, 0.0, 0.0]  # inside
        arm.publishing = True
        diag = state('fault', timeout=10)
        assert 'moved' in diag['reason']
        quiet(0.5)

        # ~/stop then ~/enable: within a step of the last command and of the arm.
        arm.position = np.array(commands()[-1][1].points[0].positions)
        assert probe.call(SetBool, enable, SetBool.Request(data=True)).success
        arm.follow = True
        more(5)
        assert probe.call(Trigger, f'/{names["policy"]}/stop', Trigger.Request()).success
        state('disabled', timeout=10)
        quiet(0.5)
        assert probe.call(SetBool, enable, SetBool.Request(data=True)).success
        more(5)
    finally:
        arm.close()

    points = [np.array([p.positions for p in m.points]) for _, m in commands()]
    assert np.all(np.abs(np.concatenate(points)) <= limit + 1e-9)
    previous = None
    for i, pts in enumerate(points):
        ref = pts[0] if previous is None or i == refreshed else previous
        steps = np.abs(np.diff(np.vstack([ref, pts]), axis=0))
        assert steps.max() <= step + 1e-9, (i, steps.max())
        previous = pts[0]


def _policy_params(run: Any, names: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        'checkpoint': str(run.checkpoint), 'torch_threads': 1,
        'joint_states_topic': names['joint_states'], 'cameras.front.topic': names['camera'],
        'joint_states_timeout_s': 0.4, 'command_topic': names['trajectory'],
        'max_step_change': 0.02, 'execute_steps': 4, 'diagnostics_rate_hz': 5.0, **extra,
    }


@pytest.mark.ros
def test_node_merges_joint_states_published_separately(
    sim_run: Any, launch_node: Any, probe: Any, names: dict[str, str],
) -> None:
    """Arm and gripper JointState messages on one topic are merged by name (as ingest does):
    the node runs; when one driver falls silent its joints age and the watchdog holds."""
    pytest.importorskip('rclpy')
    from diagnostic_msgs.msg import DiagnosticArray
    from rosharness import wait_for
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    policy = launch_node('ptr_ros.policy_node', _policy_params(sim_run, names),
                         names['policy'])
    probe.record('command', JointTrajectory, names['trajectory'])
    probe.record('diagnostics', DiagnosticArray, '/diagnostics')
    arm = ScriptedArm(probe, names, [0.2, -0.3, 0.4])
    arm.split = True

    def state(want: str, timeout: float = 30.0) -> dict[str, str]:
        def check() -> dict[str, str] | None:
            assert policy.alive(), policy.output()[-3000:]
            diag = probe.latest_diagnostics(names['policy'])
            return diag if diag is not None and diag['state'] == want else None
        got: dict[str, str] = wait_for(check, timeout, f'state {want}')
        return got

    try:
        state('disabled', timeout=120)
        enable = f"/{names['policy']}/enable"
        assert probe.call(SetBool, enable, SetBool.Request(data=True)).success
        wait_for(lambda: len(probe.recorded.get('command')) >= 5, 60, 'commands')
        diag = state('running')
        assert diag['rejected_total'] == '0'
        # the train/serve lag: the held state's age at each control tick (20 Hz states here)
        assert 0 < float(diag['state_age_ms.p50']) < 200
        print(f"state_age_ms p50 {diag['state_age_ms.p50']} p99 {diag['state_age_ms.p99']}")
        first = np.array(probe.recorded.get('command')[0][1].points[0].positions)
        assert np.abs(first - [0.2, -0.3, 0.4]).max() <= 0.02 + 1e-9  # all three joints known
        arm.split = False  # the gripper driver stops; the arm's messages keep coming
        diag = state('stale', timeout=10)
        assert 'joint_states' in diag['reason']
    finally:
        arm.close()


@pytest.mark.ros
def test_a_control_rate_other_than_the_training_rate_is_refused(
    sim_run: Any, launch_node: Any, names: dict[str, str],
) -> None:
    policy = launch_node('ptr_ros.policy_node',
                         _policy_params(sim_run, names, control_rate_hz=30.0), names['policy'])
    assert policy.proc.wait(120) == 2
    out = policy.output()
    assert ('control_rate_hz 30 differs from the training rate 10 Hz: observations would be '
            'sampled and actions played 3x as fast as in training; serve at 10 Hz') in out
    assert 'Traceback' not in out


def test_diagnostic_values_name_state_ages_latencies_and_rejections() -> None:
    from ptr_ros.safety import diagnostic_values
    from ptr_ros.worker import LatencyWindow

    gate = SafetyGate({'joint_states': 0.2, 'camera/front': 0.5})
    gate.mark('joint_states', 10.0)
    rejections = RejectionCounter()
    rejections.add('camera/front', 'wrong image size')
    window = LatencyWindow()
    window.add(0.010)
    values = diagnostic_values(
        gate.evaluate(10.1), robot='arm', interface='trajectory', commands_published=3,
        chunks=2, rejections=rejections, received={'joint_states': 5},
        latencies={'inference_ms': window, 'state_age_ms': LatencyWindow()}, last_error='')
    assert values['state'] == 'disabled'  # the gate starts disabled
    assert values['robot'] == 'arm'
    assert values['commands_published'] == '3'
    assert values['age.camera/front'] == 'never'
    assert float(values['age.joint_states']) == pytest.approx(0.1, rel=1e-3)
    assert float(values['inference_ms.p50']) == pytest.approx(10.0, rel=1e-6)
    assert values['state_age_ms.p99'] == 'n/a'
    assert values['received.joint_states'] == '5'
    assert values['rejected.camera/front: wrong image size'] == '1'
    assert 'last_inference_error' not in values


def test_message_checks_name_the_reason_and_what_was_wrong() -> None:
    from sensor_msgs.msg import Image, JointState

    from ptr_ros.safety import RejectedMessageError, check_image, check_joint_states

    part, named = check_joint_states(JointState(name=['b'], position=[0.5]), ['a', 'b'])
    assert named.tolist() == [False, True]
    assert part[1] == 0.5
    with pytest.raises(RejectedMessageError, match='none of the profile joints') as err:
        check_joint_states(JointState(name=['z'], position=[0.0]), ['a', 'b'])
    assert err.value.reason == 'wrong joint set'
    with pytest.raises(RejectedMessageError) as err:
        check_joint_states(JointState(name=['a'], position=[float('nan')]), ['a', 'b'])
    assert err.value.reason == 'non-finite value'
    img = Image(height=4, width=6, encoding='rgb8', step=18, data=bytes(4 * 18))
    frame, dims = check_image(img, role='front', expected=None, size=(2, 3), depth=False,
                              channels=3)
    assert frame.shape == (2, 3, 3)
    assert dims == (4, 6)
    with pytest.raises(RejectedMessageError, match=r'4x6, expected 8x8') as err:
        check_image(img, role='front', expected=(8, 8), size=(2, 3), depth=False, channels=3)
    assert err.value.reason == 'wrong image size'
    with pytest.raises(RejectedMessageError) as err:
        check_image(img, role='front', expected=None, size=(2, 3), depth=False, channels=1)
    assert err.value.reason == 'wrong channels'
