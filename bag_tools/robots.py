"""A robot as a dataset or a checkpoint records it: its resolved profile, and nothing else.

``manifest.json`` (``robots.<name>``) and a checkpoint's ``robots.json`` store each robot as
``{"profile": <the resolved profile>}`` (``robot_record``); every other fact readers ask of a
robot -- state/action names, joint limits, camera roles, image size, channels, rate -- is
derived from that profile when it is read (``read_robot``), so no copy can disagree with it.
Records an older writer made, which also hold those copies, read the same: the copies are not
read.

Robots trained together share one image size: ``shared_image_size`` is the one check of it
(ingest, when a robot joins a dataset; the training layout; a checkpoint's robots).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from bag_tools.errors import DatasetError, ProfileError
from bag_tools.observation import image_channels
from bag_tools.profile import RobotProfile

__all__ = ['RobotEntry', 'read_robot', 'robot_entry', 'robot_record', 'shared_image_size']


class RobotEntry(TypedDict):
    """A robot as readers see it (the embodiment id is the key): its profile, the record that
    is stored, and what is derived from it when read (``robot_entry``)."""

    state_names: list[str]
    action_names: list[str]
    joint_names: list[str]
    joint_lower: list[float]
    joint_upper: list[float]
    camera_roles: list[str]
    image_size: list[int]  # [H, W]
    image_channels: dict[str, int]  # role -> C
    image_dtypes: dict[str, str]  # role -> 'uint8' | 'uint16'
    rate_hz: float
    profile: dict[str, Any]  # the resolved robot profile, as loaded: the stored record


def robot_entry(profile: RobotProfile) -> RobotEntry:
    """The entry of ``profile``'s robot: the profile and what readers ask of it."""
    return RobotEntry(
        state_names=profile.state_names,
        action_names=profile.action_names,
        joint_names=list(profile.joints),
        joint_lower=list(profile.joint_lower),
        joint_upper=list(profile.joint_upper),
        camera_roles=profile.camera_roles,
        image_size=list(profile.image_size),
        image_channels={c.role: image_channels(c.depth) for c in profile.cameras},
        image_dtypes={c.role: 'uint16' if c.depth else 'uint8' for c in profile.cameras},
        rate_hz=profile.rate_hz,
        profile=profile.to_dict(),
    )


def robot_record(entry: RobotEntry) -> dict[str, Any]:
    """What a manifest (or a checkpoint's ``robots.json``) stores of a robot: its profile."""
    return {'profile': entry['profile']}


def read_robot(record: Any, *, where: str) -> RobotEntry:
    """The entry of a stored robot ``record``, derived from its profile (``where`` names the
    file and robot in the one-line error). Copies an older writer stored beside the profile
    are not read."""
    profile = record.get('profile') if isinstance(record, dict) else None
    if not isinstance(profile, dict):
        msg = f'{where}: expected a mapping {{"profile": ...}}, got {record!r:.80}'
        raise DatasetError(msg)
    try:
        return robot_entry(RobotProfile.from_dict(profile, source=f'{where}: profile'))
    except ProfileError as err:
        msg = f'{err}'
        raise DatasetError(msg) from err


def shared_image_size(robots: Mapping[str, RobotEntry], *, where: str) -> tuple[int, int]:
    """The one image size ``(H, W)`` of the robots with cameras, ``(0, 0)`` when none has one.

    Robots trained together share one image size (ingest resizes every frame to its profile's
    size): robots that differ are refused in one line naming ``where`` and each robot's size.
    """
    sizes = {name: (int(e['image_size'][0]), int(e['image_size'][1]))
             for name, e in sorted(robots.items()) if e['camera_roles']}
    if len(set(sizes.values())) > 1:
        shown = ', '.join(f'{name} {list(size)}' for name, size in sizes.items())
        msg = (f'{where}: robots trained together share one image size, these differ '
               f'({shown}); ingest them at one image_size')
        raise DatasetError(msg)
    return next(iter(sizes.values()), (0, 0))
