"""Real Redis and PostgreSQL for tests: the machine's shared ones, or throwaway instances.

Tests that stop or restart a service start their own instance (own port, own data directory)
so the shared services stay up. With CI=true a missing service fails the test: a skipped
Redis test in CI is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

from tests.e2e.server import free_port

SHARED_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SHARED_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
PG_BIN = (
    Path("/usr/lib/postgresql")
    / (
        sorted(os.listdir("/usr/lib/postgresql"))[-1]
        if Path("/usr/lib/postgresql").exists()
        else "x"
    )
    / "bin"
)


def unavailable(what: str) -> None:
    """Skip locally, fail in CI: CI must exercise the real services."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is required in CI but unavailable")
    pytest.skip(f"{what} unavailable")


def require_shared_redis() -> str:
    try:
        redis.Redis.from_url(SHARED_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        unavailable(f"Redis at {SHARED_REDIS_URL}")
    return SHARED_REDIS_URL


def unique_prefix() -> str:
    """Pub/sub channels ignore Redis database numbers: isolate runs by prefix instead."""
    return f"crm_chat_test_{uuid.uuid4().hex[:10]}"


class SharedPostgresDatabase:
    """A fresh database on the shared PostgreSQL server, dropped afterwards."""

    def __init__(self) -> None:
        self.name = f"crm_chat_e2e_{uuid.uuid4().hex[:10]}"
        base = SHARED_POSTGRES_URL.rsplit("/", 1)[0]
        self.admin_url = SHARED_POSTGRES_URL
        self.url = f"{base}/{self.name}"

    def create(self) -> SharedPostgresDatabase:
        try:
            with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
        except psycopg.OperationalError:
            unavailable(f"PostgreSQL at {self.admin_url}")
        return self

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class ThrowawayRedis:
    """A redis-server of our own on a free port, which a test may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ThrowawayRedis:
        if shutil.which("redis-server") is None:
            unavailable("redis-server binary")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ThrowawayPostgres:
    """A PostgreSQL cluster of our own (initdb in a temp dir, own port), stoppable."""

    def __init__(self) -> None:
        # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
        self.directory = Path(tempfile.mkdtemp(prefix="crm_chat_pg_"))
        self.data = self.directory / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self, *args: str, check: bool = True) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=check, capture_output=True, timeout=60)

    def init(self) -> ThrowawayPostgres:
        if not (PG_BIN / "initdb").exists():
            unavailable("PostgreSQL server binaries")
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> ThrowawayPostgres:
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.directory / "pg.log"),
            "-o",
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1",
            "start",
        )
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)


def wait_until(check, timeout: float = 15.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)
