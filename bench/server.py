"""Start and stop a benchmark server process (daphne or uvicorn), pinned to one CPU."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_layout() -> tuple[str | None, int | None]:
    """(server CPU list for taskset, load-generator CPU) when there are >= 2 CPUs to split."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cpus[0]), cpus[1]


def worker_cpus(server_cpu: str | None, workers: int) -> str | None:
    """Several workers get every CPU (the load generator then shares one with them)."""
    if server_cpu is None or workers == 1:
        return server_cpu
    return ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))


LISTEN_BACKLOG = 1024  # as scripts/dev; uvicorn's default is 2048


@dataclass
class ServerProcess:
    kind: str  # daphne | uvicorn
    env: dict
    log_path: Path
    cpu: str | None = None
    port: int = field(default_factory=free_port)
    workers: int = 1  # > 1: manage.py chat_serve, the supervisor of that many daphnes
    process: subprocess.Popen | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "daphne" and self.workers > 1:
            cmd = [sys.executable, "manage.py", "chat_serve", f"--workers={self.workers}"]
            cmd += [f"--port={self.port}", "--application=bench.asgi:application"]
        elif self.kind == "daphne":
            cmd = [
                sys.executable,
                "-m",
                "daphne",
                # Twisted listens with a backlog of 50 unless told: a burst of handshakes
                # overflowed it, and each dropped SYN came back a second later (p99 > 1 s).
                "-e",
                f"tcp:port={self.port}:interface=127.0.0.1:backlog={LISTEN_BACKLOG}",
                "bench.asgi:application",
            ]
        elif self.kind == "uvicorn":
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
                "--ws-per-message-deflate",
                "false",
            ]
        elif self.kind == "plain":
            cmd = [sys.executable, "-m", "bench.plain_server", "--port", str(self.port)]
        else:
            raise ValueError(f"unknown server {self.kind!r}")
        if self.cpu is not None:
            cmd = ["taskset", "-c", self.cpu, *cmd]
        return cmd

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.kind} not healthy after {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server process and, under chat_serve, its workers (their sum is the server)."""
        pids, index = [self.pid], 0
        while index < len(pids):
            pids += _children(pids[index])
            index += 1
        return pids

    def rss_bytes(self) -> int:
        return sum(_statm_rss(pid) for pid in self.pids())

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server processes (all their threads)."""
        return sum(_cpu_seconds(pid) for pid in self.pids())

    def cpu_seconds_by_pid(self) -> dict[int, float]:
        return {pid: _cpu_seconds(pid) for pid in self.pids()}

    def threads(self) -> int:
        return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in self.pids())

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _statm_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError:  # a worker restarting
        return 0


def _cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
