"""Helpers for the launch tests: is the launch stack here, ``ptr`` built with colcon, waits.

``ros2 launch ptr ...`` and ``ros2 run ptr ...`` find the package through a colcon install tree
(``AMENT_PREFIX_PATH``), exactly as on a robot. :func:`build_ptr` builds this checkout into a
scratch workspace and returns the environment that ``. install/setup.sh`` gives, which the tests
hand to every process they launch. Waits are event-driven with generous deadlines: the launch
tests run beside the rest of the suite on a loaded 2-core machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LAUNCH_MISSING = ('ROS 2 launch stack not installed: scripts/env.sh installs it from '
                  '../shared/vendor/ros2_launch (absent here) or source a ROS 2 install')
BUILD_TIMEOUT_S = 600.0


def launch_stack_missing() -> str | None:
    """Why the launch tests cannot run here, or None when they can."""
    for module in ('launch', 'launch_ros', 'launch_pytest', 'ros2cli', 'rclpy'):
        if importlib.util.find_spec(module) is None:
            return f'{LAUNCH_MISSING} (no module {module})'
    if _tool('ros2') is None:
        return f'{LAUNCH_MISSING} (no ros2 command)'
    if _tool('colcon') is None:
        return 'colcon not installed (pip install .[dev])'
    return None


def _tool(name: str) -> str | None:
    """``name`` beside this interpreter (the venv's bin/) first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


@dataclass(frozen=True)
class ColconInstall:
    """``ptr`` built with colcon: the install tree and the environment its setup.sh sets."""

    workspace: Path
    prefix: Path        # <workspace>/install
    env: dict[str, str]  # variables setup.sh added or changed (PATH, PYTHONPATH, AMENT_...)

    def environ(self) -> dict[str, str]:
        """The full environment of a process started from a shell that sourced setup.sh."""
        return {**os.environ, **self.env}


def build_ptr(workspace: Path) -> ColconInstall:
    """``colcon build`` of this checkout into ``workspace``; raises naming the log on failure."""
    colcon = _tool('colcon')
    if colcon is None:
        msg = 'colcon not found (pip install .[dev])'
        raise RuntimeError(msg)
    workspace.mkdir(parents=True, exist_ok=True)
    log = workspace / 'colcon-build.log'
    cmd = [colcon, '--log-base', str(workspace / 'log'), 'build',
           '--base-paths', str(REPO), '--packages-select', 'ptr',
           '--build-base', str(workspace / 'build'), '--install-base', str(workspace / 'install'),
           '--event-handlers', 'console_direct-']
    with log.open('w') as out:
        proc = subprocess.run(cmd, cwd=workspace, stdout=out, stderr=subprocess.STDOUT,
                              timeout=BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = '\n'.join(log.read_text().splitlines()[-30:])
        msg = f'colcon build of {REPO} failed (exit {proc.returncode}, log {log}):\n{tail}'
        raise RuntimeError(msg)
    prefix = workspace / 'install'
    return ColconInstall(workspace, prefix, sourced_env(prefix / 'setup.sh'))


def sourced_env(setup: Path) -> dict[str, str]:
    """The variables that ``. setup`` adds or changes in a POSIX shell."""
    proc = subprocess.run(['sh', '-c', '. "$0" >/dev/null && env -0', str(setup)],
                          capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        msg = f'sourcing {setup} failed: {proc.stderr.decode(errors="replace").strip()}'
        raise RuntimeError(msg)
    after = dict(item.split('=', 1) for item in proc.stdout.decode().split('\0') if '=' in item)
    return {k: v for k, v in after.items()
            if os.environ.get(k) != v and k not in ('_', 'SHLVL', 'PWD', 'OLDPWD')}


def wait_for_start(context: Any, action: Any, timeout: float) -> bool:
    """Wait until the ExecuteProcess ``action`` has started; False after ``timeout`` seconds.

    Unlike ``launch_pytest.tools.process.wait_for_start_sync`` this cannot miss a start that
    happened before it was called (the test body may begin after the process is up): the
    handler is registered first, then the action's state is read.
    """
    from launch.event_handlers import OnProcessStart

    done = threading.Event()
    handler = OnProcessStart(target_action=action, on_start=lambda *_: done.set())
    return _wait(context, handler, done, lambda: action.process_details is not None, timeout)


def wait_for_exit(context: Any, action: Any, timeout: float) -> bool:
    """Wait until the ExecuteProcess ``action`` has exited; False after ``timeout`` seconds.

    Race-free like :func:`wait_for_start`.
    """
    from launch.event_handlers import OnProcessExit

    done = threading.Event()
    handler = OnProcessExit(target_action=action, on_exit=lambda *_: done.set())
    return _wait(context, handler, done, lambda: action.return_code is not None, timeout)


def _wait(context: Any, handler: Any, done: threading.Event, happened: Callable[[], bool],
          timeout: float) -> bool:
    context.register_event_handler(handler, append=True)
    try:
        return happened() or done.wait(timeout) or happened()
    finally:
        context.unregister_event_handler(handler)


_STARTED = re.compile(r'\[(\S+)\]: process started with pid \[(\d+)\]')


def reap_children(output: str) -> list[str]:
    """SIGKILL every process that ``ros2 launch`` reported starting and that still runs.

    A ``ros2 launch`` that is itself killed (SIGTERM after a missed SIGINT) leaves its nodes
    running; this keeps them from outliving the test. Returns the names of those it killed.
    Only processes whose command line still names a ``ptr`` executable are touched (a pid can
    be reused).
    """
    killed = []
    for name, pid_text in _STARTED.findall(output):
        pid = int(pid_text)
        try:
            cmdline = Path(f'/proc/{pid}/cmdline').read_bytes()
        except OSError:
            continue  # gone
        if b'/lib/ptr/' not in cmdline and b'ptr_cli' not in cmdline:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(name)
    return killed
