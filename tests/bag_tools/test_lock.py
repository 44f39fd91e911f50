"""``writer_lock``: one live writer per folder; a killed one does not hold it; a planted symlink
in place of the lock file is refused, its target untouched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bag_tools.errors import BagToolsError
from bag_tools.lock import LOCK_NAME, WriterBusyError, refuse_if_busy, writer_lock

HOLD = ('import sys, time; from bag_tools.lock import writer_lock\n'
        'with writer_lock(sys.argv[1], "holder"):\n'
        '    print("held", flush=True); time.sleep(600)\n')


def test_a_second_writer_is_refused_and_a_killed_one_holds_nothing(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == 'held'
        with pytest.raises(WriterBusyError, match=rf'pid {holder.pid} \(holder'), \
                writer_lock(tmp_path, 'second'):
            pass
        with pytest.raises(WriterBusyError, match=rf'pid {holder.pid} \(holder'):
            refuse_if_busy(tmp_path)  # the check a writer makes before looking at the folder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    note = (tmp_path / LOCK_NAME).read_text()
    deadline = time.monotonic() + 10
    while True:
        try:
            refuse_if_busy(tmp_path)
            break
        except WriterBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert (tmp_path / LOCK_NAME).read_text() == note  # the check wrote nothing
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process
        try:
            with writer_lock(tmp_path, 'third'):
                break
        except WriterBusyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / 'precious.txt'
    target.write_text('keep me\n')
    folder = tmp_path / 'ds'
    folder.mkdir()
    (folder / LOCK_NAME).symlink_to(target)
    with pytest.raises(BagToolsError, match='the lock file is a symlink'), \
            writer_lock(folder, 'writer'):
        pass
    assert target.read_text() == 'keep me\n'
