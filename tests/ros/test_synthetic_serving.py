"""policy_node serves a policy trained on ``ptr_core.synthetic`` data (its profile validates)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')
pytest.importorskip('torch')

import rclpy
from rclpy.parameter import Parameter

from ptr_core.configuration import load_config
from ptr_core.synthetic import make_synthetic_dataset
from ptr_core.trainer import train
from ptr_ros.policy_node import PolicyNode

pytestmark = pytest.mark.ros


def test_policy_node_starts_on_a_synthetic_checkpoint(tmp_path: Path) -> None:
    data = tmp_path / 'ds'
    make_synthetic_dataset(data, robot='arm', episodes=3, length=12, state_dim=3,
                           cameras=('front',), image_size=(16, 16), seed=4)
    result = train(load_config(None, [
        'steps=2', 'batch_size=4', 'device=cpu', 'log_every=1', 'val_every=0',
        'policy.chunk_length=4', 'data.obs_horizon=2', 'data.val_fraction=0.0',
        'data.num_workers=0', f"data.datasets=['{data}']", f"out_dir='{tmp_path / 'run'}'",
        'policy.unet_dims=[16, 32]', 'policy.encoder.image_feature_dim=16',
    ]))
    assert result.final is not None
    context = rclpy.context.Context()
    rclpy.init(context=context)
    node = None
    try:
        node = PolicyNode(context=context, parameter_overrides=[
            Parameter('checkpoint', value=str(result.final)),
            Parameter('torch_threads', value=1),
        ])
        assert node.robot == 'arm'
        assert node.params.state_topic == '/arm/joint_states'
        assert node.params.cameras['front'].topic == '/arm/front/image_raw'
        assert node.action_names == ['arm_cmd0', 'arm_cmd1', 'arm_cmd2']
        assert node.params.execute_steps == 2  # K = L / 2 of the policy's chunk length 4
    finally:
        if node is not None:
            node.destroy_node()
        context.try_shutdown()
