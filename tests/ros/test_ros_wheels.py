"""The ROS 2 wheels work here: two processes exchange real JointState messages over DDS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip('rclpy', reason='rclpy not installed (pip install .[ros], or source ROS 2)')

pytestmark = pytest.mark.ros

PEER = Path(__file__).with_name('pubsub_peer.py')


def test_discovery_is_kept_on_localhost() -> None:
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert os.environ['ROS_LOCALHOST_ONLY'] == '1'
    assert 0 <= int(os.environ['ROS_DOMAIN_ID']) <= 101


def test_joint_state_crosses_processes() -> None:
    topic = f'/ptr_test/joint_states_{os.getpid()}'
    sub = subprocess.Popen([sys.executable, str(PEER), 'sub', topic, '5'],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pub = subprocess.Popen([sys.executable, str(PEER), 'pub', topic, '60'],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        out, err = sub.communicate(timeout=90)
    finally:
        pub.kill()
        pub.wait()
        sub.kill()
    assert sub.returncode == 0, err[-2000:]
    msgs = [json.loads(line) for line in out.splitlines() if line.startswith('{')]
    assert len(msgs) == 5
    for msg in msgs:
        assert msg['name'] == ['shoulder', 'elbow', 'wrist']
        seq = msg['position'][0]
        assert msg['position'] == [seq, 0.5 * seq, -1.0]
        assert msg['stamp'] > 0
    seqs = [m['position'][0] for m in msgs]
    assert seqs == sorted(seqs)
