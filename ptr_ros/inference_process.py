"""``PolicyRunner`` in a child process (plain Python, no rclpy): the node's ``inference_process``
option, so inference never holds the node's GIL.

``ProcessRunner(checkpoint, device=..., threads=...)`` starts a spawned child that loads the
checkpoint and answers ``infer``/``reset`` over a pipe; the node's inference thread blocks on
the pipe (no GIL held) while the child computes. The child dies with the node (daemon, and the
pipe closing ends its loop). Only arrays and plain values cross the pipe, between this process
and its own child; nothing from the network is unpickled.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = ['ProcessRunner']


def _serve(conn: Connection, checkpoint: str, device: str, threads: int) -> None:
    # Ctrl-C reaches the whole process group; the node stops this child (close, then kill),
    # so it does not die on SIGINT with a traceback in the node's log.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        from ptr_core.inference import PolicyRunner

        if threads > 0:
            torch.set_num_threads(threads)
        runner = PolicyRunner.from_checkpoint(checkpoint, device=device)
    except Exception as err:
        conn.send(('error', f'{type(err).__name__}: {err}'))
        return
    conn.send(('ready', None))
    while True:
        try:
            kind, args = conn.recv()
        except (EOFError, OSError):
            return  # the node closed the pipe or died
        if kind == 'close':
            return
        try:
            if kind == 'infer':
                state, images, robot, steps = args
                result: Any = np.asarray(runner.infer(state, images, robot, steps=steps))
            else:
                runner.reset()
                result = None
            conn.send(('ok', result))
        except Exception as err:
            conn.send(('error', f'{type(err).__name__}: {err}'))


class ProcessRunner:
    """``infer`` and ``reset`` of a ``PolicyRunner`` loaded in a child process."""

    def __init__(self, checkpoint: str, *, device: str, threads: int) -> None:
        ctx = multiprocessing.get_context('spawn')
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, checkpoint, device, threads),
                                 name='ptr-inference', daemon=True)
        self._proc.start()
        child.close()
        self._ready = False

    def _call(self, kind: str, args: Any) -> Any:
        if not self._ready:
            self._reply()  # the child's ('ready', None), or why it could not load
            self._ready = True
        self._conn.send((kind, args))
        return self._reply()

    def _reply(self) -> Any:
        try:
            status, value = self._conn.recv()
        except (EOFError, OSError) as err:
            msg = f'inference process exited (code {self._proc.exitcode})'
            raise PtrError(msg) from err
        if status == 'error':
            msg = f'inference process: {value}'
            raise PtrError(msg)
        return value

    def infer(self, state: npt.NDArray[np.float32], images: dict[str, npt.NDArray[Any]],
              robot: str, steps: int | None = None) -> npt.NDArray[Any]:
        result: npt.NDArray[Any] = self._call('infer', (state, images, robot, steps))
        return result

    def reset(self) -> None:
        self._call('reset', None)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # the child is gone already
            self._conn.send(('close', None))
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()
