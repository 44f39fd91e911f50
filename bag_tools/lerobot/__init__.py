"""LeRobot datasets (v2.1 and v3.0) in and out of ptr datasets: parquet with pyarrow, video with
PyAV. No torch, no LeRobot install needed (see docs/lerobot.md).

- ``import_lerobot(folder, profile, out)``: LeRobot episodes -> ptr episodes (``ptr ingest``).
- ``export_lerobot(dataset, out)``: a ptr dataset -> LeRobot v3.0 (``ptr export``).
"""

from bag_tools.lerobot.format import LeRobotError, is_lerobot_dataset
from bag_tools.lerobot.profile import (
    LeRobotCamera,
    LeRobotProfile,
    derive_profile,
    is_lerobot_profile_file,
    load_lerobot_profile,
)

__all__ = [
    'LeRobotCamera',
    'LeRobotError',
    'LeRobotProfile',
    'derive_profile',
    'is_lerobot_dataset',
    'is_lerobot_profile_file',
    'load_lerobot_profile',
]
