"""Where attachments are stored, from the environment (crm_backend/file_storage.py): settings
read in a new process, as a server reads them at start-up."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.e2e.server import PROJECT_DIR
from tests.s3_server import PREFIX, Bucket

PRINT_STORAGES = (
    "import json; from django.conf import settings; print(json.dumps(settings.STORAGES))"
)
# Saves through Django's default storage, as an upload does, and says under which name.
SAVE_A_FILE = (
    "import django; django.setup(); "
    "from django.core.files.base import ContentFile; "
    "from django.core.files.storage import default_storage; "
    "print(default_storage.save('chat/room/file', ContentFile(b'conteudo')))"
)


def python_with_env(code: str, **env: str) -> subprocess.CompletedProcess:
    # Only what is given: no AWS_* or CHAT_* of the machine running the tests leaks in.
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"DJANGO_SETTINGS_MODULE": "crm_backend.settings", "PATH": "/usr/bin:/bin", **env},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def storages_with_env(**env: str) -> dict:
    result = python_with_env(PRINT_STORAGES, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_a_bucket_attachments_go_to_the_file_system():
    storages = storages_with_env(CHAT_MEDIA_ROOT="/srv/media")

    assert storages["default"] == {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    assert storages["staticfiles"]["BACKEND"].endswith("StaticFilesStorage")


def test_a_bucket_in_the_environment_makes_s3_the_default_storage():
    storages = storages_with_env(
        CHAT_S3_BUCKET="chat-files",
        CHAT_S3_PREFIX="/anexos/",
        CHAT_S3_ENDPOINT_URL="https://minio.internal:9000",
        CHAT_S3_REGION="sa-east-1",
        CHAT_S3_ADDRESSING_STYLE="path",
        CHAT_S3_ACCESS_KEY_ID="AKIDEXAMPLE",
        CHAT_S3_SECRET_ACCESS_KEY="not-a-real-secret",
    )

    assert storages["default"] == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "chat-files",
            "location": "anexos",
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
            "gzip": False,
            "max_memory_size": 2 * 1024 * 1024,
            "endpoint_url": "https://minio.internal:9000",
            "region_name": "sa-east-1",
            "addressing_style": "path",
            "access_key": "AKIDEXAMPLE",
            "secret_key": "not-a-real-secret",
        },
    }
    assert storages["staticfiles"]["BACKEND"].endswith("StaticFilesStorage")


def test_unset_s3_settings_are_left_to_boto3():
    """Credentials and region from AWS_* / ~/.aws / an instance role, found by boto3 itself."""
    options = storages_with_env(CHAT_S3_BUCKET="chat-files")["default"]["OPTIONS"]

    assert options["location"] == ""
    assert not {"endpoint_url", "region_name", "addressing_style", "access_key", "secret_key"} & (
        set(options)
    )


def test_a_half_made_s3_configuration_stops_start_up():
    half = python_with_env(PRINT_STORAGES, CHAT_S3_BUCKET="b", CHAT_S3_ACCESS_KEY_ID="AKID")
    style = python_with_env(PRINT_STORAGES, CHAT_S3_BUCKET="b", CHAT_S3_ADDRESSING_STYLE="dns")

    assert half.returncode != 0 and "ImproperlyConfigured" in half.stderr
    assert "CHAT_S3_ACCESS_KEY_ID and CHAT_S3_SECRET_ACCESS_KEY go together" in half.stderr
    assert "AKID" not in half.stderr, "the error names the settings, never their values"
    assert style.returncode != 0 and "CHAT_S3_ADDRESSING_STYLE must be one of" in style.stderr


def test_a_process_configured_by_the_environment_stores_in_the_bucket(s3_server):
    bucket = Bucket.create(s3_server)
    env = bucket.env()  # CHAT_S3_BUCKET, _PREFIX, _ENDPOINT_URL, _REGION and the keys

    saved = python_with_env(SAVE_A_FILE, **env)

    assert saved.returncode == 0, saved.stderr
    assert saved.stdout.strip() == "chat/room/file"
    assert bucket.keys() == [f"{PREFIX}/chat/room/file"]
    assert bucket.read(f"{PREFIX}/chat/room/file") == b"conteudo"
    again = python_with_env(SAVE_A_FILE, **env)
    assert again.stdout.strip() != "chat/room/file", "a taken name is never overwritten"
    assert len(bucket.keys()) == 2
