"""``ptr ingest LEROBOT_DIR``: LeRobot episodes into a ptr dataset, one episode per unit.

Each LeRobot episode becomes one ptr episode, through the same driver as bags
(``bag_tools.ingest.ingest_source``: lock, atomic episode directories, manifest merge, resume);
re-running skips the episodes already in (same robot, same content hash). Results use
``bag_tools.ingest``'s ``BagResult``/``IngestResult`` with ``path`` = ``<folder>#episode=<i>``,
so the CLI reports both kinds alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bag_tools.dataset import EpisodeData
from bag_tools.errors import BagToolsError, DatasetError, ProfileError
from bag_tools.ingest import (
    BagResult,
    BagStatus,
    IngestResult,
    Runner,
    Source,
    ingest_source,
    land_episode,
)
from bag_tools.lerobot.format import LeRobotError
from bag_tools.lerobot.profile import LeRobotCamera, LeRobotProfile, derive_profile
from bag_tools.lerobot.reader import LeRobotSource, frame_bytes, read_episode
from bag_tools.profile import RobotProfile
from bag_tools.validity import check_invalid

__all__ = ['LeRobotEpisodes', 'import_lerobot', 'parse_episodes', 'resolve_profiles']

log = logging.getLogger(__name__)


def parse_episodes(text: str) -> list[int]:
    """``'1,2'``, ``'0-9'``, ``'1,4-6'`` -> sorted episode indices."""
    out: set[int] = set()
    for part in (p.strip() for p in text.split(',')):
        if not part:
            continue
        lo, sep, hi = part.partition('-')
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            msg = f'--episodes: {part!r} is not an index or a range like 3-7'
            raise LeRobotError(msg) from None
        if a < 0 or b < a:
            msg = f'--episodes: bad range {part!r}'
            raise LeRobotError(msg)
        out.update(range(a, b + 1))
    if not out:
        msg = f'--episodes: no index in {text!r}'
        raise LeRobotError(msg)
    return sorted(out)


def resolve_profiles(
    src: LeRobotSource, profile: LeRobotProfile | None
) -> tuple[LeRobotProfile, RobotProfile]:
    """The LeRobot profile to read with and the robot profile the dataset records.

    Without a profile, a ptr export's ``meta/ptr.json`` gives back the original robot (its
    names, limits and ROS topics); otherwise the profile is derived from ``info.json``.
    """
    entry = src.ptr_meta.get('robot') if profile is None else None
    if entry is not None:
        robot = RobotProfile.from_dict(entry['profile'], source=f'{src.root}/meta/ptr.json')
        lp = LeRobotProfile(
            robot=robot.robot, state=('observation.state',), action='action',
            cameras=tuple(LeRobotCamera(c.role, f'observation.images.{c.role}', c.depth)
                          for c in robot.cameras),
            image_size=robot.image_size if robot.cameras else (96, 96),
            min_episode_steps=robot.min_episode_steps, source=f'{src.root}/meta/ptr.json')
        return lp, robot
    lp = profile or derive_profile(src.info, source=str(src.root))
    frame_bytes(src, lp)  # too large a frame: one line before anything is read
    state_names = src.names(lp.state)
    action_names = src.names([lp.action])
    limits = lp.joint_limits or src.state_limits(lp.state)
    if limits is None:
        limits = _data_limits(src, lp)
    if len(limits[0]) != len(state_names):
        msg = (f'{lp.source}: key joint_limits: {len(limits[0])} values, the state has '
               f'{len(state_names)}')
        raise ProfileError(msg)
    fps_rate = src.fps
    tasks = sorted(set(src.tasks.values()))
    robot = lp.to_robot_profile(state_names=state_names, action_names=action_names,
                                rate_hz=fps_rate, limits=limits,
                                task=lp.task or (tasks[0] if len(tasks) == 1 else ''))
    return lp, robot


def _data_limits(src: LeRobotSource, lp: LeRobotProfile) -> tuple[list[float], list[float]]:
    """Min/max of the state over every present episode (no stats files to read them from)."""
    lows, highs = [], []
    for idx in src.present:
        try:
            ep = read_episode(src, src.episodes[idx], LeRobotProfile(
                robot=lp.robot, state=lp.state, action=lp.action, source=lp.source),
                robot=lp.robot, warn=[])
        except LeRobotError:
            continue  # this episode fails alone, with its own line, when it is imported
        lows.append(ep.state.min(axis=0))
        highs.append(ep.state.max(axis=0))
    if not lows:
        msg = f'{src.root}: no episode has data'
        raise LeRobotError(msg)
    return np.min(lows, axis=0).tolist(), np.max(highs, axis=0).tolist()


def import_lerobot(
    root: str | Path,
    profile: LeRobotProfile | None,
    out: str | Path,
    *,
    episodes: Sequence[int] | None = None,
    progress: Callable[[BagResult], None] | None = None,
    max_invalid: float | None = None,
    runner: Runner | None = None,
) -> IngestResult:
    """Import the LeRobot dataset at ``root`` into the ptr dataset at ``out``.

    ``episodes`` selects by LeRobot episode index (default: every episode whose data is
    present). Warnings (stale totals, missing files) are logged and kept in the results'
    reasons; an episode that cannot be read fails alone. ``max_invalid``: an episode with a
    stream invalid at more than this share of its steps fails. ``runner``: where episodes are
    converted (default: here, one after another; ``bag_tools.fleet.ray_runner``: Ray tasks).
    Raises ``LeRobotError`` when no chosen episode has data (nothing is written then); a run
    that creates ``out`` and imports nothing leaves nothing behind.
    """
    root, out = Path(root), Path(out)
    src = LeRobotSource.open(root)
    for line in src.warnings:
        log.warning('%s', line)
    chosen = list(episodes) if episodes is not None else src.present
    if not any(idx in src.rows for idx in chosen):
        raise LeRobotError(_nothing_to_import(src, chosen))
    lp, robot = resolve_profiles(src, profile)
    source = LeRobotEpisodes(src, tuple(chosen), lp, robot, max_invalid)
    return ingest_source(source, out, progress=progress, runner=runner)


def _nothing_to_import(src: LeRobotSource, chosen: list[int]) -> str:
    """Why none of ``chosen`` can be imported, in one line."""
    if not chosen:  # the whole folder
        first = next(iter(src.missing.values()), f'{src.root}: no episode listed')
        return (f'{src.root}: nothing to import: none of its {len(src.episodes)} listed '
                f'episode(s) has data (first: {first.split(": ", 1)[1]})')
    idx = chosen[0]
    why = (src.missing[idx].split(': ', 1)[1] if idx in src.missing
           else f'episode {idx} is not in the dataset')
    have = ', '.join(map(str, src.present[:10])) or 'none'
    return (f'{src.root}: nothing to import: no selected episode has data (first: {why}); '
            f'episodes with data: {have}{", ..." if len(src.present) > 10 else ""}')


@dataclass(frozen=True)
class LeRobotEpisodes(Source):
    """Episodes of one LeRobot folder, one unit each (``import_lerobot``'s source)."""

    src: LeRobotSource
    indices: tuple[int, ...]
    lp: LeRobotProfile
    robot: RobotProfile
    max_invalid: float | None = None

    def labels(self) -> list[str]:
        return [f'{self.src.root}#episode={idx}' for idx in self.indices]

    def convert(self, index: int, out: Path, done: frozenset[str]) -> BagResult:
        return _import_one(self.src, self.indices[index], self.lp, self.robot, out, done,
                           self.max_invalid)


def _import_one(src: LeRobotSource, idx: int, lp: LeRobotProfile, robot: RobotProfile,
                out: Path, done: frozenset[str], max_invalid: float | None) -> BagResult:
    path = f'{src.root}#episode={idx}'
    if idx not in src.episodes:
        have = f'{min(src.episodes)}-{max(src.episodes)}' if src.episodes else 'none'
        return BagResult(path, BagStatus.FAILED,
                         f'{src.root}: episode {idx} is not in the dataset (episodes {have})')
    if idx in src.missing:
        return BagResult(path, BagStatus.FAILED, src.missing[idx])
    warn: list[str] = []
    try:
        ep = read_episode(src, src.episodes[idx], lp, robot=robot.robot, warn=warn)
        for line in warn:
            log.warning('%s', line)
        if ep.content_hash in done:
            return BagResult(path, BagStatus.SKIPPED, 'already ingested (same content hash)',
                             ep.content_hash)
        if ep.length < lp.min_episode_steps:
            return BagResult(path, BagStatus.FAILED,
                             f'{path}: {ep.length} frames, shorter than min_episode_steps '
                             f'{lp.min_episode_steps}')
        # a stream invalid at more than WARN_INVALID_SHARE is a warning, as for a bag; over
        # max_invalid the episode fails and nothing of it is written
        check_invalid(Path(path), [ep], _valid_spans(ep, lp), max_invalid=max_invalid)
        land_episode(out, ep)
    except DatasetError as err:
        return BagResult(path, BagStatus.SKIPPED, str(err)) if 'already exists' in str(err) \
            else BagResult(path, BagStatus.FAILED, str(err))
    except BagToolsError as err:
        return BagResult(path, BagStatus.FAILED, str(err))
    except OSError as err:
        return BagResult(path, BagStatus.FAILED, f'{path}: {err}')
    return BagResult(path, BagStatus.OK, '; '.join(warn), ep.content_hash, (ep.id,), ep.length,
                     0)


def _valid_spans(ep: EpisodeData, lp: LeRobotProfile) -> dict[str, tuple[int, int]]:
    """Feature key -> the times of its first and last valid row (LeRobot rows sit on the grid,
    so a feature's samples are its valid rows)."""
    masks = dict.fromkeys(lp.state, ep.state_valid)
    masks[lp.action] = ep.action_valid
    masks.update({c.key: ep.image_valid[c.role] for c in lp.cameras if c.role in ep.image_valid})
    spans = {}
    for key, mask in masks.items():
        rows = np.flatnonzero(mask)
        if len(rows):
            spans[key] = (int(ep.timestamp[rows[0]]), int(ep.timestamp[rows[-1]]))
    return spans
