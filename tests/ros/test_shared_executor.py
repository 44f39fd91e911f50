"""The policy node and the simulator evaluation execute chunks the same way.

One checkpoint, one observation sequence (an ingested episode): the ``PolicyNode`` (configured,
not activated) is fed the frames through its observation store and its control loop is ticked
by hand, waiting for each chunk, so every chunk arrives one tick after the tick that asked for
it; ``ptr_sim.evaluate``'s ``CheckpointPolicy`` steps through the same observations with the
node's ``ExecutionConfig`` and ``latency_ticks=1``. Both use ``ptr_core.inference.ChunkExecutor``;
the commands the node publishes equal the simulator's actions (clamped to the same joint
limits), with temporal ensembling on and chunks overlapping.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from rosharness import SimRun, wait_for

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')
pytest.importorskip('torch')

import rclpy
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

from bag_tools.dataset import Dataset
from ptr_ros.policy_node import PolicyNode
from ptr_sim.evaluate import CheckpointPolicy

pytestmark = pytest.mark.ros


class RecordingNode(PolicyNode):
    """The real node; every command it publishes is also kept (its first point)."""

    def __init__(self, **kwargs: Any) -> None:
        self.sent: dict[int, npt.NDArray[np.float64]] = {}
        super().__init__(**kwargs)

    def _publish_command(self, points: npt.NDArray[np.float64], planned: float) -> None:
        assert self.control is not None
        self.sent[self.control.tick_count] = np.array(points[0])
        super()._publish_command(points, planned)


def image_msg(frame: npt.NDArray[np.uint8]) -> Image:
    h, w, _ = frame.shape
    return Image(height=h, width=w, encoding='rgb8', step=w * 3, data=frame.tobytes())


def test_node_and_simulator_evaluation_send_the_same_commands(sim_run: SimRun) -> None:
    episode = next(iter(Dataset.open(sim_run.dataset).episodes()))
    ticks = min(episode.length, 14)
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = RecordingNode(context=context, parameter_overrides=[
            Parameter('checkpoint', value=str(sim_run.checkpoint)),
            Parameter('torch_threads', value=1),
            Parameter('command_interface', value='forward'),
            Parameter('execute_steps', value=3),
            Parameter('temporal_ensembling', value=True),
            Parameter('ensemble_decay', value=0.3),
            Parameter('max_step_change', value=10.0),
            Parameter('joint_states_timeout_s', value=60.0),
            Parameter('camera_timeout_s', value=60.0),
            Parameter('autostart', value=False),  # ticked by hand below: no control thread
        ])
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        control = node.control
        assert control is not None
        assert node.params.execute_steps < node.runner.chunk_length  # chunks overlap
        assert control.enable()[0]
        for t in range(ticks):
            control.store.on_joint_states(JointState(
                name=list(node.profile.joints), position=[float(v) for v in episode.state[t]]),
                time.monotonic())
            control.store.on_image('front', image_msg(np.asarray(episode.images['front'][t])),
                                   time.monotonic())
            control.tick(time.monotonic())
            wait_for(lambda: not control.worker.busy, 60, f'the chunk of tick {t + 1}')
            time.sleep(0.001)
        assert control.chunks_received == -(-ticks // 3)

        sim = CheckpointPolicy(sim_run.checkpoint, node.robot, execution=node.params.execution,
                               latency_ticks=1, steps=node.params.sampling_steps or None)
        sim.reset(1)
        actions = {}
        for t in range(ticks):
            frames = {'front': np.asarray(episode.images['front'][t])[None]}
            actions[t + 1] = sim(np.asarray(episode.state[t:t + 1], np.float32), frames,
                                 np.array([True]))[0]
    finally:
        if node is not None:
            node.destroy_node()
        context.try_shutdown()

    # Tick 1: the first chunk is not there yet -- the node sends nothing, the simulator holds.
    assert 1 not in node.sent
    np.testing.assert_array_equal(actions[1], 0.0)
    assert sorted(node.sent) == list(range(2, ticks + 1))
    for tick, cmd in node.sent.items():
        expected = np.clip(actions[tick], node.lower, node.upper)
        np.testing.assert_allclose(cmd, expected, rtol=1e-6, atol=1e-6, err_msg=f'tick {tick}')
    # The commands move: the comparison is not between two constant streams.
    assert np.ptp(np.stack(list(node.sent.values())), axis=0).max() > 1e-4
