"""Where attachments are stored: Django's STORAGES from the environment (README, "Configuration").

Without CHAT_S3_BUCKET: FileSystemStorage under MEDIA_ROOT (CHAT_MEDIA_ROOT). With it:
django-storages' S3Storage on that bucket, at AWS or any S3-compatible server
(CHAT_S3_ENDPOINT_URL). Objects stay private: no ACL is sent, so they get the bucket's own
(private unless someone opened the bucket), and no bucket URL ever reaches a client, since
downloads are read through the storage by our view, which checks membership first.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

FILESYSTEM_BACKEND = "django.core.files.storage.FileSystemStorage"
S3_BACKEND = "storages.backends.s3.S3Storage"
STATICFILES = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# A download is buffered while it is served (django-storages reads the whole object): past this
# many bytes into a temporary file, so concurrent downloads of large files do not fill memory.
S3_MAX_MEMORY_BYTES = 2 * 1024 * 1024
# Settings passed to S3Storage only when set; unset, django-storages and boto3 decide (keys:
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance role; region: AWS_REGION).
_OPTIONAL_S3_ENV = {
    "endpoint_url": "CHAT_S3_ENDPOINT_URL",
    "region_name": "CHAT_S3_REGION",
    "addressing_style": "CHAT_S3_ADDRESSING_STYLE",
    "access_key": "CHAT_S3_ACCESS_KEY_ID",
    "secret_key": "CHAT_S3_SECRET_ACCESS_KEY",
}
_ADDRESSING_STYLES = ("auto", "path", "virtual")


def storages_from_env(env) -> dict:
    """Django's STORAGES: the default one (attachments) per the environment, static files as
    Django's default."""
    bucket = env.str("CHAT_S3_BUCKET", default="")
    default = {"BACKEND": S3_BACKEND, "OPTIONS": s3_options(env, bucket)} if bucket else None
    return {"default": default or {"BACKEND": FILESYSTEM_BACKEND}, "staticfiles": STATICFILES}


def s3_options(env, bucket: str) -> dict:
    options = {
        "bucket_name": bucket,
        "location": env.str("CHAT_S3_PREFIX", default="").strip("/"),
        # Never replace an object: a name taken gets a suffix, as on the file system.
        "file_overwrite": False,
        "default_acl": None,
        # Unused (no URL is handed out); were one ever made, it would be signed, not public.
        "querystring_auth": True,
        "gzip": False,  # what is stored is the uploaded bytes, served as they came
        "max_memory_size": S3_MAX_MEMORY_BYTES,
    }
    for option, name in _OPTIONAL_S3_ENV.items():
        if value := env.str(name, default=""):
            options[option] = value
    _check(options)
    return options


def _check(options: dict) -> None:
    # Stop start-up over a half-made configuration rather than fail at the first upload.
    if ("access_key" in options) != ("secret_key" in options):
        raise ImproperlyConfigured(
            "CHAT_S3_ACCESS_KEY_ID and CHAT_S3_SECRET_ACCESS_KEY go together (or set neither "
            "and let boto3 find the credentials)"
        )
    style = options.get("addressing_style", "auto")
    if style not in _ADDRESSING_STYLES:
        raise ImproperlyConfigured(
            f"CHAT_S3_ADDRESSING_STYLE must be one of {', '.join(_ADDRESSING_STYLES)}"
        )
