"""Helpers for the node tests: node processes, a probe node, polling waits.

Every node runs in its own process (``python -m ptr_ros.<node> --ros-args ...``) that inherits
the DDS settings of tests/conftest.py. Waits poll with generous deadlines: the machine may be
loaded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class SimRun:
    bags: list[Path]
    dataset: Path
    checkpoint: Path


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """Poll ``predicate`` until truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}')
        time.sleep(poll)


class NodeProcess:
    """One node in a subprocess, its output in a log file (shown when a test fails)."""

    def __init__(self, module: str, params: dict[str, Any], log: Path, name: str) -> None:
        args = [sys.executable, '-m', module, '--ros-args', '-r', f'__node:={name}']
        for key, value in params.items():
            args += ['-p', f'{key}:={_param(value)}']
        self.log = log
        self._out = log.open('w')
        env = {**os.environ, 'PYTHONPATH': f'{REPO}{os.pathsep}{os.environ.get("PYTHONPATH", "")}',
               'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log.read_text(errors='replace')

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._out.close()
        return self.proc.returncode


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_param(v) if not isinstance(v, str) else v for v in value) + ']'
    return str(value)


@dataclass
class Recorded:
    lock: threading.Lock = field(default_factory=threading.Lock)
    messages: dict[str, list[tuple[float, Any]]] = field(default_factory=dict)

    def add(self, key: str, msg: Any) -> None:
        with self.lock:
            self.messages.setdefault(key, []).append((time.monotonic(), msg))

    def get(self, key: str) -> list[tuple[float, Any]]:
        with self.lock:
            return list(self.messages.get(key, []))


class Probe:
    """A test-side rclpy node spinning in a thread: records topics, calls services."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.recorded = Recorded()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # shutting down
                if self._stop.is_set():
                    return
                raise

    def record(self, key: str, msg_type: Any, topic: str, qos: Any = 10) -> None:
        self.node.create_subscription(msg_type, topic, lambda m: self.recorded.add(key, m), qos)

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 30.0) -> Any:
        client = self.node.create_client(srv_type, name)
        wait_for(lambda: client.service_is_ready(), timeout, f'service {name}', poll=0.1)
        future = client.call_async(request)
        wait_for(future.done, timeout, f'response of {name}')
        return future.result()

    def diagnostics(self, node_name: str) -> list[tuple[float, dict[str, str]]]:
        out = []
        for t, msg in self.recorded.get('diagnostics'):
            for status in msg.status:
                if status.name.startswith(f'{node_name}:'):
                    out.append((t, {kv.key: kv.value for kv in status.values}))
        return out

    def latest_diagnostics(self, node_name: str) -> dict[str, str] | None:
        got = self.diagnostics(node_name)
        return got[-1][1] if got else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.executor.shutdown()
        self.node.destroy_node()
        self.context.try_shutdown()
