"""``ptr ingest LEROBOT_DIR``: LeRobot episodes into a ptr dataset, one episode at a time.

Each LeRobot episode becomes one ptr episode (written atomically like a bag's); re-running skips
the episodes already in (same robot, same content hash). Results use ``bag_tools.ingest``'s
``BagResult``/``IngestResult`` with ``path`` = ``<folder>#episode=<i>``, so the CLI reports both
kinds alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bag_tools.dataset import MANIFEST, Dataset, write_episode
from bag_tools.errors import BagToolsError, DatasetError, ProfileError
from bag_tools.ingest import BagResult, BagStatus, IngestResult, _prepare, _remove_empty_dataset
from bag_tools.lerobot.format import LeRobotError
from bag_tools.lerobot.profile import LeRobotCamera, LeRobotProfile, derive_profile
from bag_tools.lerobot.reader import LeRobotSource, frame_bytes, read_episode
from bag_tools.profile import RobotProfile

__all__ = ['import_lerobot', 'parse_episodes', 'resolve_profiles']

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
) -> IngestResult:
    """Import the LeRobot dataset at ``root`` into the ptr dataset at ``out``.

    ``episodes`` selects by LeRobot episode index (default: every episode whose data is
    present). Warnings (stale totals, missing files) are logged and kept in the results'
    reasons; an episode that cannot be read fails alone. Raises ``LeRobotError`` when no chosen
    episode has data (nothing is written then); a run that creates ``out`` and imports nothing
    leaves nothing behind.
    """
    root, out = Path(root), Path(out)
    src = LeRobotSource.open(root)
    for line in src.warnings:
        log.warning('%s', line)
    chosen = list(episodes) if episodes is not None else src.present
    if not any(idx in src.rows for idx in chosen):
        raise LeRobotError(_nothing_to_import(src, chosen))
    lp, robot = resolve_profiles(src, profile)
    made = [p for p in (out, *out.parents) if not p.exists()]  # folders this run creates
    created = not (out / MANIFEST).exists()
    ds = Dataset.create_or_open(out, rate_hz=robot.rate_hz)
    try:
        return _import_into(src, chosen, lp, robot, ds, progress)
    finally:
        if created and not ds.manifest['episodes']:
            _remove_empty_dataset(ds, made)


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


def _import_into(src: LeRobotSource, chosen: list[int], lp: LeRobotProfile,
                 robot: RobotProfile, ds: Dataset,
                 progress: Callable[[BagResult], None] | None) -> IngestResult:
    new_robot = robot.robot not in ds.manifest['robots']
    done = _prepare(ds, robot)
    result = IngestResult(ds.root)
    written: list[str] = []
    try:
        for idx in chosen:
            res = _import_one(src, idx, lp, robot, ds, done)
            if res.status is BagStatus.OK:
                written += res.episodes
            elif res.status is BagStatus.FAILED:
                log.warning('%s', res.reason)
            result.bags.append(res)
            if progress is not None:
                progress(res)
    finally:
        if written:
            ds.add_episodes([ds.episode(i) for i in written], robots={}, refresh_stats=False)
        if new_robot and not any(e['robot'] == robot.robot for e in ds.manifest['episodes']):
            del ds.manifest['robots'][robot.robot]
            ds.manifest['stats'].pop(robot.robot, None)
        ds.refresh_stats()
    return result


def _import_one(src: LeRobotSource, idx: int, lp: LeRobotProfile, robot: RobotProfile,
                ds: Dataset, done: frozenset[str]) -> BagResult:
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
        write_episode(ds.root, ep)
    except DatasetError as err:
        return BagResult(path, BagStatus.SKIPPED, str(err)) if 'already exists' in str(err) \
            else BagResult(path, BagStatus.FAILED, str(err))
    except BagToolsError as err:
        return BagResult(path, BagStatus.FAILED, str(err))
    except OSError as err:
        return BagResult(path, BagStatus.FAILED, f'{path}: {err}')
    return BagResult(path, BagStatus.OK, '; '.join(warn), ep.content_hash, (ep.id,), ep.length,
                     0)
