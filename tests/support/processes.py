"""The services as real processes, as `python -m services.<name>` runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_dir: Path, tag: str = ""):
        self.name = name
        self.env = env
        self.port = free_port()
        self.log_path = log_dir / f"{name}{tag}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env, "METRICS_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"services.{self.name}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}:\n{self.log()}"
                )
            try:
                if requests.get(self.metrics_url, timeout=1).ok and "running:" in self.log():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log()}")

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, as an orchestrator stops a service; the exit code."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: a crash, nothing gets to finish."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024


class Platform:
    """Several service processes sharing one broker vhost and databases."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.processes: list[ServiceProcess] = []

    def start(self, *names: str, tag: str = "") -> list[ServiceProcess]:
        started = [
            ServiceProcess(n, self.env, self.log_dir, tag or f"-{len(self.processes) + i}").start()
            for i, n in enumerate(names)
        ]
        self.processes.extend(started)  # stopped at teardown even if not ready
        for process in started:
            process.wait_ready()
        return started

    def of(self, name: str) -> list[ServiceProcess]:
        return [p for p in self.processes if p.name == name]

    def stop(self) -> None:
        """SIGTERM to every process at once, then wait for each: they stop
        side by side, as an orchestrator stops a deployment."""
        running = [p for p in self.processes if p.process and p.process.poll() is None]
        for process in running:
            process.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in running:
            try:
                process.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log_path.name})\n{p.log()[-4000:]}" for p in self.processes
        )
