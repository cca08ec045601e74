"""A real S3-compatible HTTP server for the storage tests: moto's `moto_server` in a process of
its own on a free port (this process never imports moto, so nothing of boto3 is patched), and
buckets on it that Django's storage is pointed at."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import environ

from crm_backend.file_storage import storages_from_env
from tests.e2e.server import free_port

# moto accepts any credentials; fixed fake ones keep boto3 from looking for real ones.
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"
PREFIX = "chat-uploads"


@dataclass
class S3Server:
    process: subprocess.Popen
    endpoint_url: str
    log_path: Path

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3_server(log_path: Path, timeout: float = 30.0) -> S3Server:
    port = free_port()
    log = open(log_path, "ab")  # a file, not a pipe: request logs must never block the server
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = S3Server(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited early:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=2):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto_server did not answer in {timeout}s:\n{log_path.read_text()}")


@dataclass
class Bucket:
    """A fresh bucket of the test server, and what Django's STORAGES needs to use it."""

    server: S3Server
    name: str
    prefix: str = PREFIX

    @classmethod
    def create(cls, server: S3Server) -> Bucket:
        bucket = cls(server, f"chat-test-{uuid.uuid4().hex[:16]}")
        server.client().create_bucket(Bucket=bucket.name)
        return bucket

    def storages(self) -> dict:
        """STORAGES as settings.py makes it from this bucket's CHAT_S3_* environment."""
        env = environ.Env()
        env.ENVIRON = self.env()
        return storages_from_env(env)

    def env(self) -> dict[str, str]:
        """The CHAT_S3_* environment that configures this bucket."""
        return {
            "CHAT_S3_BUCKET": self.name,
            "CHAT_S3_PREFIX": f"/{self.prefix}/",
            "CHAT_S3_ENDPOINT_URL": self.server.endpoint_url,
            "CHAT_S3_REGION": REGION,
            "CHAT_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "CHAT_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def key(self, name: str) -> str:
        """The object key of a stored file's name (a FileField's `.name`)."""
        return f"{self.prefix}/{name}"

    def keys(self) -> list[str]:
        listed = self.server.client().list_objects_v2(Bucket=self.name)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.object(key)["Body"].read()

    def object(self, key: str) -> dict:
        return self.server.client().get_object(Bucket=self.name, Key=key)
