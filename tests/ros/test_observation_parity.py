"""Serving preprocesses exactly like training.

The messages of an ingested bag are published, over DDS, to a ``PolicyNode`` (with the trained
checkpoint); after each grid step the node's observation history goes through the runner's
preprocessing, and the tensors are compared element for element with the training loader's
sample of the same dataset frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosharness import SimRun, wait_for

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')
torch = pytest.importorskip('torch')

import rclpy  # noqa: E402
import simdata  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402

from bag_tools.dataset import Dataset  # noqa: E402
from bag_tools.observation import stamp_ns  # noqa: E402
from bag_tools.reader import open_bag  # noqa: E402
from ptr_core import batch as K  # noqa: E402
from ptr_core.configuration import DataConfig, DatasetSpec  # noqa: E402
from ptr_core.data import build_data  # noqa: E402
from ptr_core.history import ObservationHistory  # noqa: E402
from ptr_core.preprocess import observation_batch  # noqa: E402
from ptr_ros.policy_node import PolicyNode  # noqa: E402

pytestmark = pytest.mark.ros


def to_rclpy(msgtype: str, msg: Any) -> Any:
    """A rosbags message as the rclpy message a driver would publish (same field values)."""
    if msgtype == 'sensor_msgs/msg/JointState':
        out = JointState(name=list(msg.name), position=[float(v) for v in msg.position])
    elif msgtype == 'sensor_msgs/msg/CompressedImage':
        out = CompressedImage(format=str(msg.format), data=bytes(msg.data))
    elif msgtype == 'geometry_msgs/msg/PoseStamped':
        out = PoseStamped()
        p, q = msg.pose.position, msg.pose.orientation
        out.pose.position.x, out.pose.position.y, out.pose.position.z = p.x, p.y, p.z
        out.pose.orientation.x, out.pose.orientation.y = q.x, q.y
        out.pose.orientation.z, out.pose.orientation.w = q.z, q.w
    else:
        out = Image(height=int(msg.height), width=int(msg.width), encoding=str(msg.encoding),
                    is_bigendian=int(msg.is_bigendian), step=int(msg.step),
                    data=bytes(msg.data))
    out.header.stamp.sec = int(msg.header.stamp.sec)
    out.header.stamp.nanosec = int(msg.header.stamp.nanosec)
    return out


def bag_messages(path: Path) -> dict[int, dict[str, Any]]:
    """Bag messages by header stamp (ns) and topic."""
    out: dict[int, dict[str, Any]] = {}
    with open_bag(path) as reader:
        for raw in reader.raw_messages():
            msg = reader.deserialize(raw)
            stamp = stamp_ns(msg)
            assert stamp is not None
            out.setdefault(stamp, {})[raw.topic] = to_rclpy(raw.msgtype, msg)
    return out


@pytest.mark.parametrize('run_name', ['sim_run', 'pose_run', 'gripper_run'])
def test_node_tensors_equal_the_training_loader_tensors(
    run_name: str, request: pytest.FixtureRequest
) -> None:
    """``sim_run``: raw Image frames; ``pose_run``: JPEG CompressedImage frames and a
    PoseStamped extra state after the joints; ``gripper_run``: a JointState extra state (the
    gripper on its own topic)."""
    sim_run: SimRun = request.getfixturevalue(run_name)
    dataset = Dataset.open(sim_run.dataset)
    episode = next(ep for ep in dataset.episodes() if ep.meta['source'].endswith('sim_1'))
    messages = bag_messages(Path(episode.meta['source']))

    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = feeder = executor = None
    try:
        suffix = f'{id(context)}'
        js_topic = f'/parity{suffix}/joint_states'
        pose_topic = f'/parity{suffix}/tool_pose'
        gripper_topic = f'/parity{suffix}/gripper'
        bag_cam = next(t for t in messages[int(episode.timestamp[0])] if 'camera' in t)
        compressed = bag_cam.endswith('/compressed')
        cam_topic = f'/parity{suffix}/image' + ('/compressed' if compressed else '')
        node = PolicyNode(context=context, parameter_overrides=[
            Parameter('checkpoint', value=str(sim_run.checkpoint)),
            Parameter('joint_states_topic', value=js_topic),
            Parameter('cameras.front.topic', value=cam_topic),
            Parameter('extra_state.tool.topic', value=pose_topic),
            Parameter('extra_state.gripper.topic', value=gripper_topic),
            Parameter('torch_threads', value=1),
        ])
        feeder = rclpy.create_node(f'parity_feeder_{suffix}', context=context)
        js_pub = feeder.create_publisher(JointState, js_topic, 10)
        pose_pub = feeder.create_publisher(PoseStamped, pose_topic, 10)
        gripper_pub = feeder.create_publisher(JointState, gripper_topic, 10)
        img_pub = feeder.create_publisher(CompressedImage if compressed else Image, cam_topic,
                                          qos_profile_sensor_data)
        extras = list(node.profile.extra_state)
        assert node.control is not None
        store = node.control.store
        history = ObservationHistory(int(node.runner.obs_horizon))
        assert len(extras) == (0 if run_name == 'sim_run' else 1)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        executor.add_node(feeder)

        def spin_until(pred: Any, what: str) -> None:
            def step() -> bool:
                executor.spin_once(timeout_sec=0.02)
                return bool(pred())
            wait_for(step, 30, what, poll=0.0)

        spin_until(lambda: js_pub.get_subscription_count() and img_pub.get_subscription_count(),
                   'the node to subscribe')
        bundle = build_data(
            DataConfig(datasets=(DatasetSpec(str(sim_run.dataset)),), obs_horizon=node.runner
                       .obs_horizon, image_shift=0, val_fraction=0.0),
            chunk_length=node.runner.chunk_length, seed=0, preprocessor=node.runner.preprocessor)
        loader = bundle.train
        ref = next(i for i, r in enumerate(loader.refs) if r.episode.id == episode.id)

        compared = 0
        for t, stamp in enumerate(np.asarray(episode.timestamp)):
            at = messages[int(stamp)]
            js_pub.publish(at['/joint_states'])
            if run_name == 'pose_run':
                pose_pub.publish(at[simdata.POSE_TOPIC])
            if run_name == 'gripper_run':
                gripper_pub.publish(at[simdata.GRIPPER_TOPIC])

            # Best-effort image delivery: resend until the node holds this very frame.
            def got_both(stamp: int = int(stamp), at: dict[str, Any] = at) -> bool:
                if store.last_stamps.get('camera/front') != stamp:
                    img_pub.publish(at[bag_cam])
                sources = ['joint_states', 'camera/front'] + [f'extra/{e.name}' for e in extras]
                return all(store.last_stamps.get(s) == stamp for s in sources)
            spin_until(got_both, f'frame {t} at the node')

            # The raw observation equals the dataset's row, element for element.
            np.testing.assert_array_equal(store.state_vector().astype(np.float32),
                                          episode.state[t])
            np.testing.assert_array_equal(store.images['front'], episode.images['front'][t])
            store.sample(history)  # what the control tick does
            state, images, _ = history.arrays()
            served = observation_batch(state, images, node.robot, node.runner.preprocessor)
            trained = loader.sample(ref, t, 0)
            for key in (K.OBS_STATE, K.obs_image_key('front'), K.OBS_CAMERA_MASK, K.STATE_MASK):
                assert torch.equal(served[key][0], trained[key]), (key, t)
            assert int(served[K.ROBOT_ID][0]) == int(trained[K.ROBOT_ID])
            compared += 1
        assert compared == episode.length >= 50
    finally:
        for n in (node, feeder):
            if n is not None:
                n.destroy_node()
        if executor is not None:
            executor.shutdown()
        context.try_shutdown()
