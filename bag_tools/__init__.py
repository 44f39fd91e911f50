"""Rosbags to training episodes: reading, time alignment, image decoding, datasets.

Depends on numpy, rosbags, opencv and yaml only -- never torch, never rclpy.
"""

from bag_tools.errors import (
    BagOpenError,
    BagToolsError,
    DatasetError,
    ImageDecodeError,
    IngestError,
    InvalidStreamError,
    MissingTypeError,
    ProfileError,
)

__all__ = [
    'BagOpenError',
    'BagToolsError',
    'DatasetError',
    'ImageDecodeError',
    'IngestError',
    'InvalidStreamError',
    'MissingTypeError',
    'ProfileError',
]
