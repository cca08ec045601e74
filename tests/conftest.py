import pytest
from channels.layers import channel_layers

from chat.realtime import ratelimit
from tests.factories import make_room, make_user
from tests.s3_server import Bucket, start_s3_server


@pytest.fixture(autouse=True)
def fresh_channel_layer(settings):
    """Each test gets its own in-memory channel layer: no groups leak between tests."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def reads_not_coalesced(settings):
    """Tests of read markers see every `read` at once; tests of coalescing set their own."""
    settings.CHAT_READ_COALESCE_SECONDS = 0


@pytest.fixture(autouse=True)
def media_in_a_temporary_folder(settings, tmp_path):
    """Uploads of a test go to a folder of its own, removed with it."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3-compatible HTTP server (moto_server) for the run; each test takes a bucket."""
    server = start_s3_server(tmp_path_factory.mktemp("s3") / "moto_server.log")
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(settings, s3_server) -> Bucket:
    """Attachments of the test go to a fresh bucket of the S3 test server."""
    bucket = Bucket.create(s3_server)
    settings.STORAGES = bucket.storages()
    return bucket


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def outsider(db):
    return make_user("outsider")


@pytest.fixture
def room(alice, bob):
    """A room where alice is the admin and bob a member; `outsider` is not in it."""
    return make_room(admins=[alice], members=[bob], name="Chat - Gerência", type="community")


@pytest.fixture(autouse=True)
def fresh_rate_limits():
    """Per-process limits (failed handshakes per IP, messages per user, REST's throttles in the
    cache) start empty: in-process clients all share one address and the same users, so one
    test's requests would count in the next."""
    from django.core.cache import cache

    ratelimit.reset_all()
    cache.clear()
    yield
    ratelimit.reset_all()
    cache.clear()


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Hashing passwords is most of a test's time; tests don't need it to be slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def end_stray_database_sessions(django_db_setup, django_db_blocker):
    """Consumers use the database from Channels' worker thread, whose connection outlives the
    tests; on PostgreSQL it would stop the test database from being dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
