"""The node's rclpy-free pieces on a trained checkpoint: joint merging and decoding
(``ObservationStore``) and the control tick (``ControlLoop``) -- no ROS, messages are plain
objects with the fields drivers fill in."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import simdata
from rosharness import SimRun, wait_for

from ptr_ros.control import ControlLoop
from ptr_ros.observations import ObservationStore
from ptr_ros.safety import NodeState, SafetyGate
from ptr_ros.settings import CameraParams, PolicyNodeParams

pytest.importorskip('torch')

from bag_tools.profile import RobotProfile
from ptr_core.inference import ExecutionConfig, PolicyRunner

RATE = 10.0


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, message: str) -> None:
        self.lines.append(('info', message))

    def warning(self, message: str) -> None:
        self.lines.append(('warning', message))

    def error(self, message: str) -> None:
        self.lines.append(('error', message))


def joint_states(names: list[str], positions: list[float], sec: int = 1) -> Any:
    return SimpleNamespace(name=names, position=positions,
                           header=SimpleNamespace(stamp=SimpleNamespace(sec=sec, nanosec=0)))


def image(h: int, w: int, value: int = 90) -> Any:
    data = np.full((h, w, 3), value, np.uint8).tobytes()
    return SimpleNamespace(height=h, width=w, encoding='rgb8', step=3 * w, is_bigendian=0,
                           data=data, header=SimpleNamespace(stamp=SimpleNamespace(sec=1,
                                                                                 nanosec=0)))


def params(**over: Any) -> PolicyNodeParams:
    camera = CameraParams(role='front', topic='/front', compressed=False, timeout_s=60.0,
                          depth=False, source_size=None)
    base = PolicyNodeParams(
        rate_hz=RATE, execution=ExecutionConfig(execute_steps=2), sampling_steps=0,
        interface='trajectory', command_topic='/cmd', trajectory_points=0, max_step_change=0.05,
        joint_limit_margin=0.0, diagnostics_rate_hz=1.0, state_topic='/joint_states',
        state_timeout_s=60.0, cameras={'front': camera}, extras={})
    return dataclasses.replace(base, **over)


def store_for(profile: RobotProfile, log: Log) -> ObservationStore:
    gate = SafetyGate({'joint_states': 1.0, 'camera/front': 1.0})
    camera = params().cameras
    return ObservationStore(profile, gate=gate, image_size=simdata.IMAGE_SIZE, cameras=camera,
                            extras={}, channels={}, warn=log.warning)


def sim_profile() -> RobotProfile:
    return RobotProfile.from_dict(simdata.profile_dict(), source='simdata')


def test_joint_states_from_two_drivers_merge_by_name() -> None:
    log = Log()
    store = store_for(sim_profile(), log)
    store.on_joint_states(joint_states(['joint_2', 'joint_1'], [0.2, 0.1]), now=10.0)
    assert store.joints is None  # joint_3 not heard of yet: no state
    assert store.gate.ages(10.0)['joint_states'] is None
    store.on_joint_states(joint_states(['joint_3'], [0.3]), now=10.5)
    np.testing.assert_array_equal(store.state_vector(), [0.1, 0.2, 0.3])
    # As old as its oldest joint: the arm driver's part is from 10.0.
    assert store.gate.ages(11.0)['joint_states'] == pytest.approx(1.0)
    assert store.state_age(11.0) == pytest.approx(1.0)
    np.testing.assert_array_equal(store.measured(['joint_3', 'x']), [0.3, np.nan])


def test_refused_messages_are_counted_and_warned_once_per_kind() -> None:
    log = Log()
    store = store_for(sim_profile(), log)
    for k in range(3):
        store.on_joint_states(joint_states(['shoulder'], [0.0]), now=1.0 + 0.1 * k)
    store.on_joint_states(joint_states(['joint_1', 'joint_1'], [0.0, 0.0]), now=1.5)
    assert store.rejections.items() == [('joint_states', 'malformed', 1),
                                        ('joint_states', 'wrong joint set', 3)]
    assert [level for level, _ in log.lines] == ['warning', 'warning']  # throttled per kind
    assert 'shoulder' in log.lines[0][1]
    assert store.received['joint_states'] == 0


def test_a_camera_is_decoded_to_the_model_size_and_locked_to_its_first_size() -> None:
    log = Log()
    store = store_for(sim_profile(), log)
    h, w = simdata.SOURCE_SIZE
    store.on_image('front', image(h, w), now=1.0)
    assert store.images['front'].shape == (*simdata.IMAGE_SIZE, 3)
    assert store.last_stamps['camera/front'] == 1_000_000_000
    store.on_image('front', image(h // 2, w // 2), now=1.1)
    assert store.rejections.items() == [('camera/front', 'wrong image size', 1)]
    assert store.received['camera/front'] == 1


@pytest.fixture(scope='module')
def runner(sim_run: SimRun) -> PolicyRunner:
    import torch

    torch.set_num_threads(1)
    return PolicyRunner.from_checkpoint(Path(sim_run.checkpoint), device='cpu')


def loop_for(runner: PolicyRunner, sent: list[tuple[npt.NDArray[np.float64], float]],
             **over: Any) -> ControlLoop:
    robot = next(iter(runner.robots))
    profile = RobotProfile.from_dict(runner.profile(robot)['profile'], source='test')
    lim = np.full(3, simdata.LIMIT)
    return ControlLoop(runner, robot, profile, params(**over), limits=(-lim, lim), channels={},
                       publish=lambda pts, planned: sent.append((pts, planned)), log=Log())


def feed(loop: ControlLoop, q: list[float]) -> None:
    h, w = simdata.SOURCE_SIZE
    loop.store.on_joint_states(joint_states(list(simdata.JOINTS), q), time.monotonic())
    loop.store.on_image('front', image(h, w), time.monotonic())


def test_the_tick_publishes_only_when_enabled_stamped_with_its_planned_time(
        runner: PolicyRunner) -> None:
    sent: list[tuple[npt.NDArray[np.float64], float]] = []
    loop = loop_for(runner, sent)
    try:
        assert loop.warm_up() > 0
        feed(loop, [0.0, 0.0, 0.0])
        loop.tick(100.0)
        assert loop.state is NodeState.DISABLED
        assert sent == []
        ok, text = loop.enable()
        assert ok, text
        planned = 200.0
        for _ in range(40):
            feed(loop, [0.0, 0.0, 0.0])
            loop.tick(planned)
            wait_for(lambda: not loop.worker.busy, 60, 'the chunk')
            planned += 1 / RATE
            if len(sent) >= 5:
                break
        assert len(sent) >= 5
        assert loop.state is NodeState.RUNNING
        for pts, when in sent:
            assert pts.shape == (2, 3)  # trajectory_points 0: K points
            assert np.all(np.abs(pts) <= simdata.LIMIT)
            assert 200.0 <= when < planned  # the planned time, handed through untouched
        steps = np.abs(np.diff(np.vstack([np.zeros(3)] + [p[0] for p, _ in sent]), axis=0))
        assert steps.max() <= 0.05 + 1e-9
        _, values = loop.diagnostics('trajectory')
        assert values['state'] == 'running'
        assert int(values['commands_published']) == len(sent)
        assert values['cadence.inference_ms.mean'] != 'n/a'
        # The planned times are from the past here: every publication counts as late.
        assert float(values['cadence.publish_late_ms.max']) > 0
        assert 'period_jitter_p99_ms' in values
        loop.stop('stopped by the test')
        count = len(sent)
        feed(loop, [0.0, 0.0, 0.0])
        loop.tick(planned)
        assert len(sent) == count
        assert loop.state is NodeState.DISABLED
    finally:
        loop.close()


def test_a_measured_state_outside_the_limits_faults_and_refuses_enable(
        runner: PolicyRunner) -> None:
    sent: list[tuple[npt.NDArray[np.float64], float]] = []
    loop = loop_for(runner, sent)
    try:
        feed(loop, [0.0, 0.0, 0.0])
        assert loop.enable()[0]
        feed(loop, [simdata.LIMIT + 1.0, 0.0, 0.0])
        loop.tick(1.0)
        assert loop.state is NodeState.FAULT
        ok, text = loop.enable()
        assert not ok
        assert 'joint_1' in text
        assert sent == []
    finally:
        loop.close()


def test_a_process_runner_infers_what_the_runner_infers(runner: PolicyRunner,
                                                         sim_run: SimRun) -> None:
    from ptr_core.errors import PtrError
    from ptr_ros.control import blank_observation
    from ptr_ros.inference_process import ProcessRunner

    robot = next(iter(runner.robots))
    state, images = blank_observation(int(runner.obs_horizon), 3, runner.image_size,
                                      {'front': False}, {})
    state += 0.1
    remote = ProcessRunner(str(sim_run.checkpoint), device='cpu', threads=1)
    try:
        remote.reset()
        runner.reset()
        np.testing.assert_allclose(remote.infer(state, images, robot),
                                   np.asarray(runner.infer(state, images, robot)),
                                   rtol=1e-5, atol=1e-6)
    finally:
        remote.close()
    missing = ProcessRunner(str(sim_run.checkpoint) + '_missing', device='cpu', threads=1)
    try:
        with pytest.raises(PtrError, match='_missing'):
            missing.reset()
    finally:
        missing.close()


def test_an_error_in_the_tick_faults_the_loop_and_nothing_more_is_sent(
        runner: PolicyRunner) -> None:
    """What the node wires: the control clock's errors latch the fault (a safe state)."""
    from ptr_ros.clock import ControlClock

    calls: list[float] = []

    def publish(points: npt.NDArray[np.float64], planned: float) -> None:
        calls.append(planned)
        raise RuntimeError('the publisher is gone')

    robot = next(iter(runner.robots))
    profile = RobotProfile.from_dict(runner.profile(robot)['profile'], source='test')
    lim = np.full(3, simdata.LIMIT)
    loop = ControlLoop(runner, robot, profile, params(), limits=(-lim, lim), channels={},
                       publish=publish, log=Log())
    clock = ControlClock(1 / RATE, loop.tick, on_error=lambda err: loop.fault(str(err)))
    try:
        feed(loop, [0.0, 0.0, 0.0])
        assert loop.enable()[0]
        clock.start()
        wait_for(lambda: (feed(loop, [0.0, 0.0, 0.0]), loop.state is NodeState.FAULT)[1], 120,
                 'the fault', poll=0.05)
        sent = len(calls)
        time.sleep(0.5)
        assert len(calls) == sent == 1
        assert 'the publisher is gone' in loop.gate.evaluate(time.monotonic()).reason
    finally:
        clock.stop()
        loop.close()
