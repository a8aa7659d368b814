"""Service processes started by the bench, and always stopped by it.

Each child runs in its own session (a Ctrl-C on the bench reaches the bench,
which then stops the children in order) and asks the kernel to SIGTERM it if
the bench dies without cleaning up (PR_SET_PDEATHSIG), so no run leaves
services consuming from a deleted vhost. Output goes to a log file per
process, never to a pipe nobody reads.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import eventlet

from bench.settings import REPO_ROOT

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not glibc: the finally blocks still stop the children
        pass


@dataclass
class Child:
    label: str
    service: str
    popen: subprocess.Popen
    log_path: Path
    metrics_port: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn(
    label: str,
    service: str,
    module: str,
    env: dict[str, str],
    log_dir: Path,
    metrics_port: int | None = None,
) -> Child:
    """Start `python -m <module>` from the repo root with exactly `env`."""
    log_path = log_dir / f"{label}.log"
    log_file = open(log_path, "wb")  # the child keeps its own descriptor
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        log_file.close()
    return Child(label, service, popen, log_path, metrics_port)


def wait_http(child: Child, timeout_s: float) -> None:
    """Wait until the child's /metrics answers; fail early if it died."""
    url = f"http://127.0.0.1:{child.metrics_port}/metrics"
    deadline = time.monotonic() + timeout_s
    while True:
        if not child.alive():
            raise RuntimeError(
                f"{child.label} exited with {child.popen.returncode}:\n{child.log_tail()}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.label}: /metrics not answering after {timeout_s:.0f}s")
        eventlet.sleep(0.2)


def stop(children: list[Child], timeout_s: float = 30) -> dict[str, int | None]:
    """SIGTERM every child (graceful: workers finish, the outbox drains), then
    SIGKILL those still running after `timeout_s`. Exit codes by label."""
    for child in children:
        if child.alive():
            try:
                child.popen.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + timeout_s
    for child in children:
        while child.alive() and time.monotonic() < deadline:
            eventlet.sleep(0.1)
        if child.alive():
            child.popen.kill()
            child.popen.wait(timeout=10)
    return {child.label: child.popen.returncode for child in children}
