"""How every ptr node's ``main`` runs: init, build, spin, stop cleanly on Ctrl-C, one line on a
configuration error.

A node's ``main`` is ``run_node(PolicyNode, 'policy_node', args)``. The parts it shares:
- Ctrl-C and ``ros2 launch`` shutdown end the spin without a traceback. rclpy can also raise
  ``RuntimeError`` ("Unable to convert call argument", from ``take_message``) when SIGINT shuts
  the context down while the executor is taking a message; with the context already down that
  is the same clean stop, and any other ``RuntimeError`` is re-raised.
- A ``PtrError``/``BagToolsError`` while building or spinning (a profile path that does not
  exist, a checkpoint without the robot) is logged as one fatal line and exits with status 2.
- The node is destroyed and the context shut down whatever happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.logging import get_logger
from rclpy.node import Node

from bag_tools.errors import BagToolsError
from ptr_core.errors import PtrError

N = TypeVar('N', bound=Node)


def run_node(make: Callable[[], N], name: str, args: Sequence[str] | None = None, *,
             spin: Callable[[N], None] = rclpy.spin) -> None:
    """Init rclpy, build the node with ``make()``, run ``spin(node)`` until it returns or the
    process is asked to stop, then tear down. ``name`` names the logger for fatal errors."""
    rclpy.init(args=None if args is None else list(args))
    node: N | None = None
    try:
        node = make()
        spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        if rclpy.ok():
            raise
        # SIGINT shut the context down while the executor was taking a message: a clean stop.
    except (PtrError, BagToolsError) as err:
        get_logger(name).fatal(str(err))
        raise SystemExit(2) from None
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
