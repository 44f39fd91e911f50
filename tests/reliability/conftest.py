"""The reliability suite replays the faults of issue 13 (planted folders, crafted manifests,
out-of-limit states, killed runs) so they stay fixed. It borrows the bag builders of
tests/bag_tools and the ROS harness of tests/ros."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for helpers in (TESTS / 'bag_tools', TESTS / 'ros'):
    if str(helpers) not in sys.path:
        sys.path.append(str(helpers))
