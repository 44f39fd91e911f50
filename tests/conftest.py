"""Test-wide setup: keep ROS 2 discovery on this machine, find the shared bags.

The DDS settings are applied here, once, before any test imports rclpy, and are inherited by every
node process a test starts: discovery stays on 127.0.0.1 and each pytest run gets its own domain.
A test that leaves the test thread's scheduling policy changed fails at teardown (and the policy
is put back): SVT-AV1 once switched the whole session to real time, which every later process
inherited and which surfaced only as a hang in an unrelated DDP test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('MUJOCO_GL', 'egl')

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the clone; PTR_SHARED_DATA points elsewhere (e.g. a clone in /tmp).
SHARED_DATA = Path(os.environ.get('PTR_SHARED_DATA', REPO.parent / 'shared' / 'data'))
BAGS = SHARED_DATA / 'bags'


@pytest.fixture(scope='session')
def shared_bags() -> Path:
    """``../shared/data/bags``; tests that need it skip where it is absent."""
    if not BAGS.is_dir():
        pytest.skip(f'shared test bags not found at {BAGS}')
    return BAGS


#: The shared LeRobot sets the import tests read (``../shared/data/lerobot``).
LEROBOT_REACHY = 'reachy2_v30_apple_storage'  # v3.0, 3 episodes, 899 rows, its mp4 absent
LEROBOT_G1 = 'unitree_g1_v21_bottle'  # v2.1, episodes 1 and 2 present, AV1 videos


@pytest.fixture(scope='session')
def lerobot_data(shared_bags: Path) -> Path:
    """``../shared/data/lerobot``; tests that need it skip where it or its sets are absent."""
    path = shared_bags.parent / 'lerobot'
    if not (path / LEROBOT_REACHY).is_dir() or not (path / LEROBOT_G1).is_dir():
        pytest.skip(f'shared LeRobot fixtures not found at {path}')
    return path


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO


pytest_plugins = ['pytester']


def _scheduling() -> tuple[int, int]:
    return os.sched_getscheduler(0), os.sched_getparam(0).sched_priority


def _policy_name(policy: tuple[int, int]) -> str:
    names = {getattr(os, n): n for n in ('SCHED_OTHER', 'SCHED_BATCH', 'SCHED_IDLE', 'SCHED_FIFO',
                                         'SCHED_RR') if hasattr(os, n)}
    return f'{names.get(policy[0], policy[0])} priority {policy[1]}'


def _real_time_threads() -> dict[int, tuple[str, int, int]]:
    """Every thread of this process running a real-time policy: tid -> (name, policy, priority).

    Read from ``/proc/self/task/*/stat`` (fields 40 and 41): a thread another thread started
    inherits its policy, so a real-time thread left behind spreads to every thread it starts
    later (DDS's, OpenMP's, a spawned process's).
    """
    found: dict[int, tuple[str, int, int]] = {}
    for task in Path('/proc/self/task').iterdir():
        try:
            stat = (task / 'stat').read_text()
        except OSError:  # the thread ended while we looked
            continue
        name = stat[stat.index('(') + 1:stat.rindex(')')]
        fields = stat[stat.rindex(')') + 2:].split()  # fields[0] is field 3, the state
        priority, policy = int(fields[37]), int(fields[38])
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            found[int(task.name)] = (name, policy, priority)
    return found


_REAL_TIME_AT_START = _real_time_threads() if hasattr(os, 'sched_getscheduler') else {}


@pytest.fixture(autouse=True)
def _scheduling_unchanged() -> Iterator[None]:
    """Fail a test that leaves this thread's scheduling policy changed, after restoring it, or
    leaves any thread of the process running real-time (a thread pool switched by a library)."""
    if not hasattr(os, 'sched_getscheduler'):  # not Linux
        yield
        return
    from bag_tools.lerobot.video import thread_scheduling

    before, c_before = _scheduling(), thread_scheduling()
    yield
    after, c_after = _scheduling(), thread_scheduling()
    if after != before:
        os.sched_setscheduler(0, before[0], os.sched_param(before[1]))
        pytest.fail(f'this test left the test thread at {_policy_name(after)} (was '
                    f'{_policy_name(before)}); every later test and the processes it starts '
                    'would inherit it. Restored.', pytrace=False)
    if c_after != c_before:
        from bag_tools.lerobot.video import _set_thread_scheduling

        _set_thread_scheduling(*c_before)
        pytest.fail(f"this test left glibc's copy of the test thread's scheduling at "
                    f'{_policy_name(c_after)} (was {_policy_name(c_before)}, the kernel shows '
                    f"{_policy_name(after)}); threads started later (DDS's) would run at it. "
                    'Restored.', pytrace=False)
    # against the session's start, not this test's: a session fixture set up for this test runs
    # before this fixture does, and what it leaves would otherwise never be anyone's
    left = {tid: v for tid, v in _real_time_threads().items() if tid not in _REAL_TIME_AT_START}
    if left:
        for tid in left:
            with contextlib.suppress(OSError):  # ended meanwhile
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        named = ', '.join(f'{name} ({_policy_name((policy, priority))})'
                          for name, policy, priority in left.values())
        pytest.fail(f'this test left {len(left)} thread(s) of the test process real-time: '
                    f'{named}; threads they start inherit it. Set back to SCHED_OTHER.',
                    pytrace=False)


_OUR_PACKAGES = ('bag_tools', 'ptr_core', 'ptr_ros', 'ptr_sim', 'ptr_cli')


@pytest.fixture(autouse=True)
def _our_loggers_propagate() -> None:
    """Our library loggers reach ``caplog`` even when ROS 2's launch stack is installed.

    Importing ``launch`` (the launch_pytest plugin does, at start-up) makes every logger created
    afterwards a ``LaunchLogger`` with ``propagate = False``, so warnings of modules imported later
    never reach the root logger that ``caplog`` listens on.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split('.')[0] in _OUR_PACKAGES:
            logger.propagate = True
