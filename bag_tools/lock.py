"""One writer per folder: an advisory lock that a dead writer does not hold.

``writer_lock(folder, what)`` takes an exclusive ``flock`` on ``folder/.ptr-writer.lock`` for as
long as the ``with`` block runs. The kernel drops the lock when the holding process exits,
however it exits (Ctrl-C, ``kill -9``, a crash), so a stale lock file never blocks the next
writer: only a live process does. A second writer fails at once with one line naming the folder
and the holder (its pid and command, recorded in the lock file), instead of interleaving its
files with the first one's.

Readers take no lock. On a network file system ``flock`` is only as good as the server's
locking (NFSv4: yes); the lock is a guard against mistakes, not an access control.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bag_tools.errors import BagToolsError

__all__ = ['LOCK_NAME', 'WriterBusyError', 'refuse_if_busy', 'writer_lock']

LOCK_NAME = '.ptr-writer.lock'


class WriterBusyError(BagToolsError):
    """Another live process holds the folder's writer lock."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(errors='replace').strip()
    except OSError:
        return 'another process'
    return text.splitlines()[0][:200] if text else 'another process'


def _busy(folder: str | Path, path: Path) -> WriterBusyError:
    return WriterBusyError(f'{folder}: {_holder(path)} is writing here; wait for it to finish '
                           f'or stop it (one writer at a time)')


@contextlib.contextmanager
def writer_lock(folder: str | Path, what: str) -> Iterator[Path]:
    """Hold ``folder``'s writer lock (creating ``folder``); ``what`` names the writer
    (e.g. ``'ptr ingest'``) for the message another writer sees."""
    folder = Path(folder)
    path = folder / LOCK_NAME
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), 0o644)
    except OSError as err:  # ELOOP: a planted symlink in place of the lock file
        why = 'the lock file is a symlink' if path.is_symlink() else err.strerror or err
        msg = f'{folder}: cannot write here: {why}'
        raise BagToolsError(msg) from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(folder, path) from None
        note = (f'pid {os.getpid()} ({what}: {" ".join(sys.argv[:3])[:120]}) since '
                f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n')
        with contextlib.suppress(OSError):  # the note is for messages only
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock


def refuse_if_busy(folder: str | Path) -> None:
    """Raise ``WriterBusyError`` when a live process holds ``folder``'s writer lock; else
    return, having written nothing (no lock file made, the holder note left as it was)."""
    path = Path(folder) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0))
    except OSError:
        return  # no lock file (or not one we may read): nobody to wait for
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(folder, path) from None
    finally:
        os.close(fd)
