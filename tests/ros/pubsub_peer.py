"""A real rclpy peer for tests: publish or receive ``sensor_msgs/JointState`` in its own process.

    python pubsub_peer.py pub TOPIC SECONDS     # publishes at 50 Hz for SECONDS
    python pubsub_peer.py sub TOPIC COUNT       # one JSON line per message, exits after COUNT
"""

from __future__ import annotations

import json
import sys
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import JointState

JOINTS = ['shoulder', 'elbow', 'wrist']


def publish(topic: str, seconds: float) -> None:
    node = Node('pubsub_peer_pub')
    pub = node.create_publisher(JointState, topic, 10)
    end = time.monotonic() + seconds
    seq = 0
    while time.monotonic() < end:
        msg = JointState()
        msg.header.stamp = node.get_clock().now().to_msg()
        msg.name = JOINTS
        msg.position = [float(seq), 0.5 * seq, -1.0]
        pub.publish(msg)
        seq += 1
        rclpy.spin_once(node, timeout_sec=0.02)
    node.destroy_node()


def subscribe(topic: str, count: int) -> None:
    node = Node('pubsub_peer_sub')
    got = 0

    def on_msg(msg: JointState) -> None:
        nonlocal got
        got += 1
        print(json.dumps({'name': list(msg.name), 'position': list(msg.position),
                          'stamp': msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9}),
              flush=True)

    node.create_subscription(JointState, topic, on_msg, 10)
    while got < count:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()


def main() -> None:
    mode, topic, arg = sys.argv[1], sys.argv[2], sys.argv[3]
    rclpy.init()
    try:
        if mode == 'pub':
            publish(topic, float(arg))
        else:
            subscribe(topic, int(arg))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
