"""CPU threads for torch: a default that is fast on a busy machine.

torch's default is one thread per core. On a shared machine whose cores are busy with other work
(this project's 2-core CI machine, a robot computer running its ROS graph) those OpenMP workers
spin-wait for cores other processes hold: a 150-step CPU training run took 7.5x the wall time of
the same run with one thread (issue 27, py-spy: 88 % of the main thread in libgomp's spin-wait).
So ptr uses half the cores it may run on (at least one; divided among the local DDP ranks), and
asks OpenMP to sleep rather than spin (``OMP_WAIT_POLICY=PASSIVE``, set by the ``ptr`` command
before torch loads; a value the user set is kept). ``threads`` in a training config, or
``torch_threads`` on the node, overrides the count.
"""

from __future__ import annotations

import os

__all__ = ['default_threads', 'prefer_passive_wait', 'use_threads']


def default_threads() -> int:
    """Half the cores this process may run on, shared among the local DDP ranks; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    ranks = max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))
    return max(1, cores // 2 // ranks)


def use_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads to ``threads`` (0: ``default_threads()``); returns it."""
    import torch

    n = threads if threads > 0 else default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def prefer_passive_wait() -> None:
    """OpenMP workers that sleep when idle instead of spinning; effective only when called
    before torch (and its OpenMP runtime) is loaded, as the ``ptr`` command does."""
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
