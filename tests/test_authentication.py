"""accounts.authentication: simplejwt's rules decide (exists, active, password unchanged); a
claim no user can have is user_not_found, not a database error."""

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt import authentication as simplejwt_authentication
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import JWTAuthentication
from tests.factories import access_token, make_user


def me(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/auth/me/")


def token_claiming(user_id) -> str:
    token = AccessToken()
    token["user_id"] = user_id
    return str(token)


def test_rest_requests_authenticate_with_the_product_class():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_AUTHENTICATION_CLASSES[0] is JWTAuthentication


@pytest.mark.django_db
def test_each_request_gets_the_user_of_its_own_token():
    alice, bob = make_user("alice"), make_user("bob")

    answers = [me(access_token(user)).json()["username"] for user in (alice, bob, alice)]

    assert answers == ["alice", "bob", "alice"]


@pytest.mark.django_db
def test_the_user_read_is_a_whole_saved_user():
    alice = make_user("alice", email="alice@example.com", first_name="Alice")
    user = JWTAuthentication().get_user(AccessToken.for_user(alice))

    assert (user.pk, user.username, user.email, user.first_name) == (
        alice.pk,
        "alice",
        "alice@example.com",
        "Alice",
    )
    assert user.password == alice.password and user._state.adding is False


@pytest.mark.django_db
@pytest.mark.parametrize("claim", [987654, "not-a-number", 10**30, None])
def test_a_token_naming_no_user_is_401_user_not_found(claim):
    make_user("alice")

    response = me(token_claiming(claim))

    assert response.status_code == 401
    assert response.json()["code"] == "user_not_found"


@pytest.mark.django_db
def test_a_deactivated_user_is_401_user_inactive():
    alice = make_user("alice")
    token = access_token(alice)
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    response = me(token)

    assert response.status_code == 401 and response.json()["code"] == "user_inactive"


@pytest.mark.django_db
def test_a_changed_password_refuses_the_token_when_simplejwt_checks_it(monkeypatch):
    monkeypatch.setattr(simplejwt_authentication.api_settings, "CHECK_REVOKE_TOKEN", True)
    alice = make_user("alice")
    before = access_token(alice)
    alice.set_password("a-new-password-456")
    alice.save()

    assert me(before).status_code == 401
    assert me(access_token(alice)).status_code == 200
