"""Settings for the CRM chat backend: one file, every knob from the environment.

Defaults are the embedded development set-up (SQLite, in-memory channel layer, DEBUG on).
Production sets DJANGO_DEBUG=false, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL
and REDIS_URL; the README has the full table.
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from accounts.client_address import trusted_proxies
from crm_backend.csp import add_static_headers
from crm_backend.file_storage import storages_from_env
from crm_backend.metrics import metrics_networks
from webhooks.destinations import private_networks_allowed

BASE_DIR = Path(__file__).resolve().parent.parent

DEV_SECRET_KEY = "django-insecure-dev-only-change-me"

env = environ.Env()

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "crm_backend.apps.ProjectConfig",
    "accounts",
    "chat",
    "crm.apps.CrmConfig",  # the example CRM app (deals with rooms), docs/crm-integration.md
    "apikeys",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "crm_backend.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


ASGI_APPLICATION = "crm_backend.asgi.application"

# --- Database: SQLite by default, PostgreSQL (psycopg 3) when DATABASE_URL says so.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers (history) run while a message is written; IMMEDIATE takes the write
    # lock at BEGIN so concurrent writers queue on `timeout` instead of failing mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
# Keep connections between messages (reconnecting per message was a tenth of the hot path);
# each is health-checked before reuse, so a restarted database is reconnected to by itself.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Threads the WebSocket writes rooms on, each room always on the same one
# (chat/realtime/room_writers.py); 0 = Channels' single database thread (SQLite, which takes
# one writer at a time).
CHAT_DB_WRITE_THREADS = env.int(
    "CHAT_DB_WRITE_THREADS",
    default=0 if DATABASES["default"]["ENGINE"].endswith("sqlite3") else 4,
)
# Threads serving HTTP requests' sync code (views, ORM), each keeping its database connection
# (chat/adapters/request_threads.py); at most this many requests touch the database at once.
CHAT_HTTP_THREADS = env.int("CHAT_HTTP_THREADS", default=4)
# Concurrent test runs (a work tree and a fresh clone) must not share a test database.
if env.str("CHAT_TEST_DB_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("CHAT_TEST_DB_NAME")}

if not DEBUG:
    # Behind a TLS-terminating proxy (the usual deployment, see README).
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0)

AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves /static/ straight from STATICFILES_DIRS under plain daphne: the test page
# works without collectstatic or a separate web server.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_ADD_HEADERS_FUNCTION = add_static_headers  # CSP for the test page
# The reference React app served at /chat/ (crm_backend/frontend.py): `npm run build` in clients/.
CHAT_FRONTEND_DIST = env.path(
    "CHAT_FRONTEND_DIST", default=BASE_DIR / "clients" / "react-demo" / "dist"
)

# --- Channel layer: in-memory (one process) unless REDIS_URL is set.
# With Redis the default is RedisPubSubChannelLayer: a group_send is one PUBLISH that each
# server process receives once and fans out locally, there are no per-channel queues to fill
# up (RedisChannelLayer drops group messages silently when a queue is full) and no group
# expiry. README "Scaling out" explains the choice; REDIS_CHANNEL_LAYER=core selects
# RedisChannelLayer, whose group membership the consumers then refresh (see chat.realtime.liveness).
REDIS_URL = env.str("REDIS_URL", default="")
# Several Redis servers, comma-separated, shard the layer: each room's group lives on one of
# them, chosen by channels-redis's consistent hash of the group's name (docs/scaling.md).
REDIS_URLS = [url.strip() for url in REDIS_URL.split(",") if url.strip()]
REDIS_CHANNEL_LAYER = env.str("REDIS_CHANNEL_LAYER", default="pubsub")
# Messages a socket may fall behind before it is closed with 1013 (never dropped silently).
CHANNEL_LAYER_CAPACITY = env.int("CHANNEL_LAYER_CAPACITY", default=1000)
# A socket whose client has not read for this long while its room kept talking is closed with
# 1013 (under daphne; chat/adapters/backpressure.py), instead of the server buffering for it
# without end.
CHAT_SLOW_RECEIVER_SECONDS = env.float("CHAT_SLOW_RECEIVER_SECONDS", default=10.0)
# Bytes the server may hold queued for one socket (broadcasts, its own answers, errors) before
# it closes that socket with 1013 instead of buffering more (under daphne;
# chat/adapters/backpressure.py).
CHAT_SOCKET_BUFFER_BYTES = env.int("CHAT_SOCKET_BUFFER_BYTES", default=4 * 1024 * 1024)
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="crm_chat")
CHANNEL_LAYER_GROUP_EXPIRY = env.int("CHANNEL_LAYER_GROUP_EXPIRY", default=86400)
if REDIS_URL:
    _redis_options = {
        # Fail fast when Redis is down instead of hanging a handshake or a send.
        "socket_connect_timeout": env.float("REDIS_CONNECT_TIMEOUT", default=2.0),
        "socket_keepalive": True,
    }
    _redis_hosts = [{"address": url, **_redis_options} for url in REDIS_URLS]
    if REDIS_CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    "hosts": [{**host, "socket_timeout": 5.0} for host in _redis_hosts],
                    "prefix": CHANNEL_LAYER_PREFIX,
                    "capacity": CHANNEL_LAYER_CAPACITY,
                    "expiry": 60,
                    "group_expiry": CHANNEL_LAYER_GROUP_EXPIRY,
                },
            }
        }
    else:
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": _redis_hosts, "prefix": CHANNEL_LAYER_PREFIX},
            }
        }
else:
    # chat.realtime.layers.LocalChannelLayer: Channels' in-memory layer without its
    # per-receiver tasks, copies and scans, and without its silent drops (a receiver that
    # falls behind is closed).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.realtime.layers.LocalChannelLayer",
            "CONFIG": {"capacity": CHANNEL_LAYER_CAPACITY},
        }
    }
# How often each server process checks its channel layer (and refreshes group membership);
# on a failure or a Redis restart its sockets are closed with 1013 so clients reconnect and
# recover what they missed with `after=`.
CHAT_LAYER_CHECK_SECONDS = env.float("CHAT_LAYER_CHECK_SECONDS", default=5.0)
# How often each server process checks, in one query, that its sockets' users are still
# active and members: a change made where no event reaches it (manage.py shell, SQL, another
# process on the in-memory layer) closes their sockets within this time (4401 / 4403).
CHAT_ACCOUNT_CHECK_SECONDS = env.float("CHAT_ACCOUNT_CHECK_SECONDS", default=10.0)

# --- REST API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.JWTAuthentication",  # simplejwt's, with the sockets' codes
        "apikeys.authentication.ApiKeyAuthentication",  # service accounts: Api-Key <key>
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, with a JSON parser bounded like the socket's (chat.json_input).
    "DEFAULT_PARSER_CLASSES": [
        "chat.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # drf-spectacular's, adding the errors each operation can answer (chat/api/schema.py).
    "DEFAULT_SCHEMA_CLASS": "chat.api.schema.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("LOGIN_THROTTLE_RATE", default="20/min"),
        # REST writes per user (chat/api/throttling.py), on top of the socket's own limits.
        "chat_writes": env.str("CHAT_REST_WRITE_RATE", default="120/min"),
    },
    # Every error in one shape, {"code", "detail"}, with the WebSocket's codes.
    "EXCEPTION_HANDLER": "chat.api.errors.exception_handler",
}

# JWT_ACCESS_SECONDS, when set, wins over JWT_ACCESS_MINUTES: tests of token expiry need seconds.
_access_seconds = env.int("JWT_ACCESS_SECONDS", default=0)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=_access_seconds)
    if _access_seconds > 0
    else timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "UPDATE_LAST_LOGIN": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CRM Chat API",
    "DESCRIPTION": "Rooms, membership and message history of the CRM chat. "
    "The WebSocket protocol is described in docs/protocol.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Requests and answers are described apart: only a request's text may not be blank.
    "COMPONENT_SPLIT_REQUEST": True,
    # Our PATCH views validate the whole body (required fields are required), not DRF's partial.
    "COMPONENT_SPLIT_PATCH": False,
}

# --- CORS and WebSocket origins share one list, matched exactly (scheme, host, port):
# chat/realtime/origin.py. Defaults: the React (3000) and Vite (5173) dev servers.
CHAT_ALLOWED_ORIGINS = env.list(
    "CHAT_ALLOWED_ORIGINS",
    default=[
        "http://localhost:3000",
        "http://127.0.0.1:3000",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
    ],
)
CORS_ALLOWED_ORIGINS = CHAT_ALLOWED_ORIGINS
# A 429's Retry-After must be readable by the page's JavaScript to back off.
CORS_EXPOSE_HEADERS = ["Retry-After"]

# Adapters (chat/adapters) to leave out, by name: for A/B measurements, or when one misbehaves.
CHAT_ADAPTERS_OFF = env.list("CHAT_ADAPTERS_OFF", default=[])

# --- Chat behaviour
CHAT_PUBLIC_TEST_ROOM = env.bool("CHAT_PUBLIC_TEST_ROOM", default=True)
CHAT_MAX_MESSAGE_LENGTH = env.int("CHAT_MAX_MESSAGE_LENGTH", default=4000)
CHAT_MAX_FRAME_BYTES = env.int("CHAT_MAX_FRAME_BYTES", default=64 * 1024)
# Token bucket per connection: RATE messages/s sustained, BURST at once; a client that gets
# more than CHAT_RATE_LIMIT_STRIKES `rate_limited` errors in a row is closed with 4429.
CHAT_RATE_LIMIT_PER_SECOND = env.float("CHAT_RATE_LIMIT_PER_SECOND", default=10.0)
CHAT_RATE_LIMIT_BURST = env.int("CHAT_RATE_LIMIT_BURST", default=30)
CHAT_RATE_LIMIT_STRIKES = env.int("CHAT_RATE_LIMIT_STRIKES", default=20)
# Every other client frame has a budget of its own per connection: frame type -> (tokens a
# second, burst). Over it the frame gets `rate_limited` and counts as a strike, as above. Set
# CHAT_FRAME_BUDGETS to JSON to change some, e.g. {"chat.sync": [4, 20]} (docs/protocol.md).
CHAT_FRAME_BUDGETS = {
    "chat.sync": (2.0, 10),  # each answer a page of up to 200 messages (~70 KB)
    "chat.sync_changes": (2.0, 10),  # the same, for changed messages
    "read": (10.0, 30),  # a client may send one for every message it sees
    "typing": (5.0, 20),  # on top of the relay limits of chat/realtime/consumers/room.py
    "ping": (2.0, 10),  # clients ping every 25-30 s; tests use pings as fences
}
_frame_budget_overrides = env.json("CHAT_FRAME_BUDGETS", default={})
if set(_frame_budget_overrides) - set(CHAT_FRAME_BUDGETS):
    raise ImproperlyConfigured(
        f"CHAT_FRAME_BUDGETS: budgets exist for {', '.join(sorted(CHAT_FRAME_BUDGETS))} only"
    )
CHAT_FRAME_BUDGETS |= {
    kind: (float(rate), int(burst)) for kind, (rate, burst) in _frame_budget_overrides.items()
}
# The same per user (all of a user's sockets on one server process) ...
CHAT_USER_RATE_LIMIT_PER_SECOND = env.float("CHAT_USER_RATE_LIMIT_PER_SECOND", default=20.0)
CHAT_USER_RATE_LIMIT_BURST = env.int("CHAT_USER_RATE_LIMIT_BURST", default=60)
# ... per client IP for the public room's messages ...
CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND = env.float(
    "CHAT_PUBLIC_IP_RATE_LIMIT_PER_SECOND", default=10.0
)
CHAT_PUBLIC_IP_RATE_LIMIT_BURST = env.int("CHAT_PUBLIC_IP_RATE_LIMIT_BURST", default=30)
# ... and per client IP for failed handshakes (4401): past the burst, that IP's handshakes are
# refused with rate_limited/4429 before any token work, until the bucket refills.
CHAT_FAILED_HANDSHAKES_PER_MINUTE = env.float("CHAT_FAILED_HANDSHAKES_PER_MINUTE", default=60.0)
CHAT_FAILED_HANDSHAKES_BURST = env.int("CHAT_FAILED_HANDSHAKES_BURST", default=100)
# The proxies in front of the server (addresses, CIDR networks): only when the direct peer is one
# of them is X-Forwarded-For read, right to left, for the client address every per-address
# limit keys on (accounts/client_address.py). Default none: the peer is the client.
CHAT_TRUSTED_PROXIES = trusted_proxies(env.list("CHAT_TRUSTED_PROXIES", default=[]))
# Authors may edit a message for this long after sending it (deleting has no time limit).
# A connection ticket (POST /api/chat/ws-ticket/) opens one socket within this many seconds.
CHAT_TICKET_SECONDS = env.int("CHAT_TICKET_SECONDS", default=30)
CHAT_EDIT_WINDOW_SECONDS = env.int("CHAT_EDIT_WINDOW_SECONDS", default=15 * 60)
# How long a change waits for its room's order (chat/domain/ordering.py) before it is refused
# as a database error (not_persisted / 503): a stalled holder must not stall every writer.
CHAT_ROOM_ORDER_TIMEOUT_SECONDS = env.float("CHAT_ROOM_ORDER_TIMEOUT_SECONDS", default=10.0)
# Presence: a socket's "online" entry lives this long unless its server process renews it,
# so a killed process's users go offline by themselves. Typing stops after TYPING seconds.
CHAT_PRESENCE_TTL_SECONDS = env.float("CHAT_PRESENCE_TTL_SECONDS", default=30.0)
CHAT_TYPING_TIMEOUT_SECONDS = env.float("CHAT_TYPING_TIMEOUT_SECONDS", default=5.0)
CHAT_HISTORY_DEFAULT_LIMIT = 50
CHAT_HISTORY_MAX_LIMIT = 200
# A socket's `read` frames are stored and announced at most once in this many seconds (the
# furthest of those between goes when the time is up): "seen by" without a frame per message.
CHAT_READ_COALESCE_SECONDS = env.float("CHAT_READ_COALESCE_SECONDS", default=1.0)
# Search (GET /api/chat/search/): PostgreSQL's text search configuration the messages are
# indexed with, read when the search migration runs (with unaccent on top).
CHAT_SEARCH_LANGUAGE = env.str("CHAT_SEARCH_LANGUAGE", default="portuguese")
# Rooms bound to CRM records (chat.domain.records): who may see a record's room is its access
# policy's answer: a dotted path to a class with can_view(user, record) and
# users_with_access(record); per model ("app_label.model" -> dotted path) in the JSON of
# CHAT_RECORD_ACCESS_POLICIES, the default for every other model in CHAT_RECORD_ACCESS_POLICY.
CHAT_RECORD_ACCESS_POLICY = env.str(
    "CHAT_RECORD_ACCESS_POLICY", default="chat.domain.records.PermissionPolicy"
)
CHAT_RECORD_ACCESS_POLICIES = {
    "crm.deal": "crm.chat.DealPolicy",
    **env.json("CHAT_RECORD_ACCESS_POLICIES", default={}),
}
# Attachments: stored through Django's storage API, FileSystemStorage under MEDIA_ROOT unless
# CHAT_S3_BUCKET names a bucket (S3 or S3-compatible; crm_backend/file_storage.py).
MEDIA_ROOT = env.path("CHAT_MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = storages_from_env(env)
CHAT_MAX_UPLOAD_BYTES = env.int("CHAT_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
CHAT_MAX_ATTACHMENTS_PER_MESSAGE = env.int("CHAT_MAX_ATTACHMENTS_PER_MESSAGE", default=10)
# Uploads no message carries, and files of deleted messages, go after this (purge_chat_uploads).
CHAT_UPLOAD_ORPHAN_HOURS = env.int("CHAT_UPLOAD_ORPHAN_HOURS", default=24)
# Different emoji one message may carry (Slack allows 23): each reaction frame lists them all.
CHAT_MAX_EMOJI_PER_MESSAGE = env.int("CHAT_MAX_EMOJI_PER_MESSAGE", default=20)
# Unread notifications older than this are e-mailed in a digest (`manage.py send_chat_digests`).
CHAT_NOTIFY_EMAIL_AFTER_MINUTES = env.int("CHAT_NOTIFY_EMAIL_AFTER_MINUTES", default=15)
# Where users reach this server: links in e-mails (a digest's unsubscribe link).
CHAT_PUBLIC_BASE_URL = env.str("CHAT_PUBLIC_BASE_URL", default="http://localhost:8000")

# Outgoing webhooks (webhooks/, sent by `manage.py deliver_webhooks`): a delivery is tried at
# most MAX_ATTEMPTS times, waiting BACKOFF seconds after the first failure, doubling up to
# BACKOFF_MAX (half of each wait random); each attempt's connection and answer within TIMEOUT.
CHAT_WEBHOOK_MAX_ATTEMPTS = env.int("CHAT_WEBHOOK_MAX_ATTEMPTS", default=8)
CHAT_WEBHOOK_TIMEOUT_SECONDS = env.float("CHAT_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
CHAT_WEBHOOK_BACKOFF_SECONDS = env.float("CHAT_WEBHOOK_BACKOFF_SECONDS", default=30.0)
CHAT_WEBHOOK_BACKOFF_MAX_SECONDS = env.float("CHAT_WEBHOOK_BACKOFF_MAX_SECONDS", default=3600.0)
# Webhook URLs resolving to loopback, private, link-local, multicast or reserved addresses are
# refused (SSRF) but in these networks: false (none), true (all), or e.g. 127.0.0.1/32.
CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS = private_networks_allowed(
    env.str("CHAT_WEBHOOK_ALLOW_PRIVATE_NETWORKS", default="false")
)

# E-mail: printed on the console unless EMAIL_URL names a server, e.g.
# smtp+tls://user:password@smtp.example.com:587 (django-environ's email_url).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="chat@localhost")

DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="admin123")

# Operator metrics (/metrics, chat/observability/metrics.py): served to a request that carries
# `Authorization: Bearer <CHAT_METRICS_TOKEN>` (when set) or comes from one of
# CHAT_METRICS_ALLOWED_NETWORKS (the client address; a proxied request only as the client a
# trusted proxy named: crm_backend.metrics._scraper_address).
CHAT_METRICS_TOKEN = env.str("CHAT_METRICS_TOKEN", default="")
CHAT_METRICS_ALLOWED_NETWORKS = metrics_networks(
    env.list("CHAT_METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
)

# Logs: `plain` text lines, or `json` (one object per line, chat/observability/logs.py). Every
# line passes RedactSecrets: no token, ticket or key in a query string reaches a log.
CHAT_LOG_FORMAT = env.str("CHAT_LOG_FORMAT", default="plain")
if CHAT_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"CHAT_LOG_FORMAT must be plain or json, not {CHAT_LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "chat.observability.logs.JsonFormatter"},
    },
    "filters": {"redact_secrets": {"()": "chat.observability.logs.RedactSecrets"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": CHAT_LOG_FORMAT,
            "filters": ["redact_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "accounts": {"level": env.str("CHAT_LOG_LEVEL", default="INFO")},
        "chat": {"level": env.str("CHAT_LOG_LEVEL", default="INFO")},
        # "Listening on TCP address …": the line that says the server is up.
        "daphne.server": {"level": "INFO"},
        "webhooks": {"level": env.str("CHAT_LOG_LEVEL", default="INFO")},
    },
}
