"""Worker processes that die with the process that started them (no orphans after ``kill -9``).

``ingest -j N`` runs bags in a fork server's children. When the ingest process is SIGKILLed,
nothing tells them: the children wait on their task queue forever, the fork server waits for
its children, and the resource tracker waits for all of them. Two guards end that chain:

* ``die_with(pid)``, the pool's worker initializer: on Linux ``prctl(PR_SET_PDEATHSIG,
  SIGKILL)`` (the kernel kills the worker when its parent, the fork server, exits), plus a
  watchdog thread that kills the worker once ``pid`` (the ingest process) is gone -- the only
  guard where prctl is absent. Workers also ignore SIGINT: Ctrl-C is the parent's to handle
  (one line, no traceback from every worker).
* Imported as the fork server's first preload module, this module arms the fork server itself
  the same way (its parent is the ingest process) and shields its preloading from Ctrl-C.

Once the workers are gone the fork server sees EOF on its liveness pipe, and the resource
tracker on its own, so both exit too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

__all__ = ['WATCHDOG_PERIOD_S', 'die_with', 'parent_death_signal', 'pid_alive', 'spawn_pool']

#: How often the watchdog looks for the parent (seconds).
WATCHDOG_PERIOD_S = 0.25
_PR_SET_PDEATHSIG = 1


def parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only).

    Returns whether it could; False elsewhere (then only a watchdog helps).
    """
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # not a pid at all (e.g. parsed from a foreign temp name)
        return False
    try:
        with open(f'/proc/{pid}/stat') as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ('Z', 'X')


def _watch(pid: int, ppid: int) -> None:
    while True:
        time.sleep(WATCHDOG_PERIOD_S)
        if os.getppid() != ppid or not pid_alive(pid):
            os.kill(os.getpid(), signal.SIGKILL)


def die_with(pid: int, *, watchdog: bool = True, ignore_interrupt: bool = True) -> None:
    """Make this (child) process die when ``pid`` or its own parent exits; ignore Ctrl-C
    unless ``ignore_interrupt`` is False."""
    if ignore_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    ppid = os.getppid()
    parent_death_signal()
    if not pid_alive(pid) or not pid_alive(ppid):  # died before the guard was in place
        os.kill(os.getpid(), signal.SIGKILL)
    if watchdog:
        threading.Thread(target=_watch, args=(pid, ppid), name='die-with-parent',
                         daemon=True).start()


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` fresh ('spawn') interpreters that die with this process.

    ``kill PID`` (SIGTERM) of the process that holds the pool ends its workers too (before:
    they ran their task to the end, for minutes, and wrote its result). Ctrl-C still reaches
    the workers with the rest of the process group and stops them as it did."""
    import multiprocessing as mp

    return ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context('spawn'),
        initializer=functools.partial(die_with, os.getpid(), ignore_interrupt=False))


def _in_forkserver_main() -> bool:
    """Whether this import runs inside ``multiprocessing.forkserver.main`` (its preloading)."""
    frame = sys._getframe(1)
    suffix = os.path.join('multiprocessing', 'forkserver.py')
    while frame is not None:
        if frame.f_code.co_name == 'main' and frame.f_code.co_filename.endswith(suffix):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


if _in_forkserver_main():
    # The fork server forks the workers, so it runs no thread of ours where prctl works (a
    # thread alive at fork time is a hazard); elsewhere the workers' watchdogs end it via EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent_death_signal()
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGKILL)
