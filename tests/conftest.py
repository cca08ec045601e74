import pytest
from channels.layers import channel_layers

from tests.factories import make_room, make_user


@pytest.fixture(autouse=True)
def fresh_channel_layer(settings):
    """Each test gets its own in-memory channel layer: no groups leak between tests."""
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


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
def fast_password_hasher(settings):
    """Hashing passwords is most of a test's time; tests don't need it to be slow."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
