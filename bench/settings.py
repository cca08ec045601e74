"""Settings for benchmark servers only: the product's settings plus what the benchmark needs.

- ASGI_APPLICATION points at bench.asgi, which adds the Channels tutorial consumer (the
  control) at /ws/tutorial/<room>/ next to the product's routes. Nothing here is reachable
  from crm_backend.settings, so the control never ships.
- The product's message rate limits would (rightly) refuse a load generator: every
  CHAT_*RATE_LIMIT*_PER_SECOND / _BURST setting (per connection, per user, ...) and the
  per-frame budgets (CHAT_FRAME_BUDGETS) are raised here unless set in the environment.
"""

import os

from crm_backend.settings import *  # noqa: F403

ASGI_APPLICATION = "bench.asgi.application"

for _name in [n for n in globals() if n.startswith("CHAT_") and "RATE_LIMIT" in n]:
    if _name not in os.environ:
        if _name.endswith("_PER_SECOND"):
            globals()[_name] = 1_000_000.0
        elif _name.endswith("_BURST"):
            globals()[_name] = 1_000_000

# Likewise the per-frame budgets: a load generator recovering after a 1013 pages chat.sync
# as fast as answers come.
if "CHAT_FRAME_BUDGETS" not in os.environ:
    CHAT_FRAME_BUDGETS = dict.fromkeys(CHAT_FRAME_BUDGETS, (1_000_000.0, 1_000_000))  # noqa: F405

# The control's route exists only when this module is the settings module.
BENCH_TUTORIAL_CONTROL = True

# Experiments (off unless set): BENCH_SQLITE_CONN_MAX_AGE overrides how long SQLite connections
# are kept (the product keeps every database's for DATABASE_CONN_MAX_AGE, 600 s by default).
_sqlite = DATABASES["default"]["ENGINE"].endswith("sqlite3")  # noqa: F405
if os.environ.get("BENCH_SQLITE_CONN_MAX_AGE") and _sqlite:
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_SQLITE_CONN_MAX_AGE"])  # noqa: F405

# BENCH_CHANNEL_LAYER=channels-memory: Channels' own InMemoryChannelLayer (the tutorial's stack)
# instead of whatever the product configures without REDIS_URL, for product and control alike.
if os.environ.get("BENCH_CHANNEL_LAYER") == "channels-memory":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": int(os.environ.get("CHANNEL_LAYER_CAPACITY", "1000"))},
        }
    }
