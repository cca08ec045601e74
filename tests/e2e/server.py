"""A real daphne process on a free port, for tests that must see what a browser sees."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEMO_PASSWORD = "demo-pass-e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Server:
    port: int
    env: dict
    log_path: Path
    process: subprocess.Popen | None = None
    extra: dict = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "daphne",
            "-e",  # as scripts/dev: a listen backlog of 1,024, not Twisted's 50
            f"tcp:port={self.port}:interface=127.0.0.1:backlog=1024",
            "crm_backend.asgi:application",
        ]

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=PROJECT_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> None:
        name = Path(self.command()[2]).name  # daphne, uvicorn…
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{name} did not become healthy in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything."""
        self.process.kill()
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def server_env(tmp_dir: Path, **overrides: str) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CHAT_", "DATABASE_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="crm_backend.settings",
        DJANGO_DEBUG="true",
        DATABASE_URL=f"sqlite:///{tmp_dir / 'db.sqlite3'}",
        CHAT_MEDIA_ROOT=str(tmp_dir / "media"),
        DEMO_PASSWORD=DEMO_PASSWORD,
        CHAT_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def prepared_env(tmp_dir: Path, **overrides: str) -> dict:
    """Environment for servers on a migrated, seeded database (SQLite file unless overridden)."""
    env = server_env(tmp_dir, **overrides)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "seed_demo")
    return env


def start_server(env: dict, log_path: Path) -> Server:
    server = Server(port=free_port(), env=env, log_path=log_path)
    server.start()
    return server


def seeded_server(tmp_dir: Path, **overrides: str) -> Server:
    """Migrate and seed a fresh database, then start daphne on it."""
    return start_server(prepared_env(tmp_dir, **overrides), tmp_dir / "daphne.log")
