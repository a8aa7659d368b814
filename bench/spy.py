"""Optional sampling profiles of the service processes (`BENCH_PROFILE=1`).

py-spy samples each process from outside (no change to the services, and
`--nonblocking` so it never pauses them) during the throughput stage. Idle
samples (the eventlet hub waiting in epoll) are left out, so the counts are
where the CPU went. The raw stacks are kept under `bench/profiles/`; the
results get, per process, CPU samples by package of the innermost frame (own
code, SQLAlchemy, kombu/amqp, marshmallow, logging...) and the top functions.

py-spy is a tool, not a dependency of the platform: without it the stage runs
unprofiled and the results say so.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import eventlet

from bench.procs import Child

_FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def package_of(path: str) -> str:
    """The top-level package of a frame's file. py-spy names files relative to
    their sys.path entry (`sqlalchemy/orm/session.py`, `shared/db.py`,
    `socket.py`), so that is the first component."""
    parts = Path(path).parts
    if "site-packages" in parts:  # an absolute path py-spy could not shorten
        parts = parts[parts.index("site-packages") + 1 :]
    elif Path(path).is_absolute():
        return Path(path).stem
    return parts[0].removesuffix(".py") if parts else "?"


def summarise(raw: str, top: int = 15) -> dict[str, Any]:
    """Where the samples went: by package and function of the innermost frame
    (self time), and by package anywhere on the stack (inclusive time: a
    sample under `sqlalchemy` counts for it even when psycopg2 is running)."""
    self_package: Counter[str] = Counter()
    inclusive_package: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    inclusive_function: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            frames.append((match.group("func"), match.group("path")) if match else (frame, frame))
        func, path = frames[-1]
        package = package_of(path)
        self_package[package] += samples
        self_function[f"{func} ({path})"] += samples
        for seen in {package_of(p) for _, p in frames}:
            inclusive_package[seen] += samples
        for seen in {f"{f} ({p})" for f, p in frames}:
            inclusive_function[seen] += samples

    def shares(counter: Counter[str], n_top: int = top) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": n, "share": round(n / total, 3)}
            for name, n in counter.most_common(n_top)
        ]

    return {
        "samples": total,
        "self_by_package": shares(self_package),
        "inclusive_by_package": shares(inclusive_package),
        "self_by_function": shares(self_function),
        "inclusive_by_function": shares(inclusive_function, top * 2),
    }


class PySpy:
    """One `py-spy record` per service process, stopped with SIGINT (it then writes)."""

    rate_hz = 100

    def __init__(self, out_dir: Path):
        self.exe = find_py_spy()
        self.out_dir = out_dir
        self._running: list[tuple[Child, subprocess.Popen, Path]] = []
        self.summaries: dict[str, Any] = {}
        self.error: str | None = None if self.exe else "py-spy not found"

    def start(self, children: list[Child]) -> None:
        if not self.exe:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for child in children:
            output = self.out_dir / f"{child.label}.txt"
            log = open(self.out_dir / f"{child.label}.log", "wb")
            spy = subprocess.Popen(
                [
                    self.exe,
                    "record",
                    "--pid",
                    str(child.pid),
                    "--rate",
                    str(self.rate_hz),
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                    "--duration",
                    "900",  # an upper bound; stop() ends it with the stage
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                # a file, not a pipe: py-spy warns when it falls behind, and a
                # pipe nobody reads would fill and stall it
                stderr=log,
            )
            log.close()  # py-spy holds its own descriptor
            self._running.append((child, spy, output))
        eventlet.sleep(0.5)  # py-spy attaches before the load starts

    def stop(self) -> None:
        for _, spy, _ in self._running:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
        for child, spy, output in self._running:
            deadline = time.monotonic() + 30
            while spy.poll() is None and time.monotonic() < deadline:
                eventlet.sleep(0.1)
            if spy.poll() is None:
                spy.kill()
                spy.wait()
            try:
                self.summaries[child.label] = summarise(output.read_text())
                self.summaries[child.label]["raw"] = str(output)
            except OSError:
                log = (self.out_dir / f"{child.label}.log").read_text(errors="replace")
                self.summaries[child.label] = {
                    "error": log.strip()[-300:] or f"no output (exit {spy.returncode})"
                }
        self._running.clear()
