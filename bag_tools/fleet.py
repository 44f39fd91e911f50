"""Fleet ingest on Ray: one Ray task per unit (a bag, a LeRobot episode), same driver as local.

``ray_runner(address, workers=N)`` is a ``bag_tools.ingest.Runner``: give it to ``ingest`` or
``import_lerobot`` (``ptr ingest ... --ray [ADDRESS]``) and each unit is converted by
``convert_unit`` in a Ray task instead of a local process. Everything else is the local
path's: this process holds the dataset's writer lock, registers the robot, skips units already
in and merges each finished unit's episodes into the manifest; a task writes its unit's
episode directories atomically (temp, then rename) straight into ``--out``. So inputs and
``--out`` must be on a path every node mounts at the same place (docs/ingest.md).

A worker that dies mid-task (killed, out of memory, its node lost) is retried by Ray up to
``RETRIES`` times; a retry finds what the dead try had already renamed into place and keeps it
(``land_episode``), so the dataset is the same. A unit that fails (a bad bag) is one line and
the others land. Ray is imported here only when a runner runs: without ``--ray`` nothing of
Ray is loaded. Usage statistics stay off (``RAY_USAGE_STATS_ENABLED=0`` before the import);
without ``address`` a local instance is started with no dashboard and ``workers`` CPUs, and
stopped at the end. Its every server (GCS, raylet, object manager, workers, the runtime-env
agent) listens on 127.0.0.1 only: Ray turns a ``127.0.0.1`` node address into the machine's
own address and listens on every interface unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
(Ray's switch for single-machine use) is set before it is imported, which a local run does.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

from bag_tools.dataset import DatasetWriteError
from bag_tools.errors import BagToolsError
from bag_tools.ingest import BagResult, BagStatus, Collect, Runner, Source, convert_unit

__all__ = ['LOOPBACK_ONLY', 'RETRIES', 'RayError', 'ray_runner']

log = logging.getLogger(__name__)

#: Ray retries a task whose worker died this many times before the unit fails.
RETRIES = 3
#: How long the driver waits for results before it hands the finished ones on (seconds).
_POLL_S = 0.5


class RayError(BagToolsError):
    """Ray cannot be started or reached (one line naming the address)."""


def ray_runner(address: str | None = None, *, workers: int = 2) -> Runner:
    """Units as Ray tasks: on the cluster at ``address`` (``host:port`` of its head, or
    ``auto``), or, without one, on a local instance of ``workers`` CPUs started for the run."""
    return functools.partial(_run_ray, address=address or None, workers=workers)


#: Set before Ray is imported for a local instance: its node address is then 127.0.0.1 and every
#: one of its servers binds there (without it Ray listens on all interfaces).
LOOPBACK_ONLY = {'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0'}


def _import_ray(*, local: bool) -> ModuleType:
    os.environ['RAY_USAGE_STATS_ENABLED'] = '0'  # never phone home, here or in the workers
    if local:
        os.environ.update(LOOPBACK_ONLY)
    try:
        import ray
    except ImportError as err:
        msg = f'--ray: Ray is not installed ({err}); pip install "ptr[fleet]"'
        raise RayError(msg) from err
    return ray


def _connect(ray: ModuleType, address: str | None, workers: int) -> bool:
    """Start or join Ray; whether this call did (so it is left at the end)."""
    if ray.is_initialized():  # the caller's own Ray session: used, and left running
        return False
    try:
        if address is None:
            _check_loopback(ray)
            ray.init(_node_ip_address='127.0.0.1', include_dashboard=False, num_cpus=workers,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except Exception as err:  # ConnectionError, RuntimeError, ValueError: Ray's own wording
        where = f'cannot connect to {address}' if address else 'cannot start a local instance'
        text = ' '.join(str(err).split())
        hint = ('' if address is None or os.environ.get('RAY_AUTH_MODE') == 'token' else
                ' (a cluster with token authentication, the default of Ray 2.60, is joined '
                'with RAY_AUTH_MODE=token and its token in ~/.ray/auth_token or '
                'RAY_AUTH_TOKEN; docs/ingest.md)')
        msg = f'--ray: {where}: {text}{hint}'
        raise RayError(msg) from err
    return True


def _check_loopback(ray: ModuleType) -> None:
    """A local instance must not listen off the machine: refused when Ray was imported (by the
    caller) before ``LOOPBACK_ONLY`` could be set."""
    constants = getattr(getattr(ray, '_private', None), 'ray_constants', None)
    if getattr(constants, 'ENABLE_RAY_CLUSTER', False):
        msg = ('--ray: Ray was imported before ptr could keep a local instance on 127.0.0.1 '
               '(it would listen on every interface); set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 '
               'before importing Ray, or start a head and pass its address')
        raise RayError(msg)


def _run_ray(
    source: Source, out: Path, done: frozenset[str], collect: Collect, *,
    address: str | None, workers: int,
) -> None:
    ray = _import_ray(local=address is None)
    started = _connect(ray, address, workers)
    try:
        _run_tasks(ray, source, out, done, collect)
    finally:
        if started:
            ray.shutdown()


def _run_tasks(
    ray: ModuleType, source: Source, out: Path, done: frozenset[str], collect: Collect,
) -> None:
    labels = source.labels()
    task = ray.remote(num_cpus=1, max_retries=RETRIES, retry_exceptions=False)(_convert_on_node)
    src_ref, done_ref = ray.put(source), ray.put(done)
    cwd = os.getcwd()  # relative inputs and --out resolve against it on every node
    refs = {task.remote(src_ref, i, out, done_ref, cwd): label for i, label in enumerate(labels)}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_POLL_S)
            for ref in ready:
                collect(_result(ray, ref, refs[ref]))
    except BaseException:  # Ctrl-C, a full disk: stop the tasks in flight (redone next run)
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def _result(ray: ModuleType, ref: Any, label: str) -> BagResult:
    """The task's result, or its failure as one line (a full disk stops the run)."""
    try:
        res = ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = err.cause
        if isinstance(cause, DatasetWriteError):
            raise cause from None
        text = ' '.join(str(cause).split())
        return BagResult(label, BagStatus.FAILED,
                         f'{label}: unexpected {type(cause).__name__}: {text}')
    except ray.exceptions.RayError as err:  # its worker or node died, RETRIES times over
        text = ' '.join(str(err).split())[:300]
        return BagResult(label, BagStatus.FAILED,
                         f'{label}: Ray task failed after {RETRIES} retries: '
                         f'{type(err).__name__}: {text}')
    assert isinstance(res, BagResult)
    return res


def _convert_on_node(
    source: Source, index: int, out: Path, done: frozenset[str], cwd: str,
) -> BagResult:
    """Ray task: ``convert_unit`` from the driver's working folder (paths resolve alike)."""
    import cv2

    cv2.setNumThreads(1)  # one task per CPU; threads inside would only contend
    try:
        os.chdir(cwd)
    except OSError as err:
        label = source.labels()[index]
        msg = (f'{label}: the working folder {cwd} is not on Ray node {socket.gethostname()} '
               f'({err.strerror}); inputs and --out must be on a path every node mounts at '
               'the same place')
        return BagResult(label, BagStatus.FAILED, msg)
    return convert_unit(source, index, out, done)
