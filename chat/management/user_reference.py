"""The USER argument of the GDPR commands: a username, or an account's id."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def user_of(reference: str):
    """The account whose username is `reference`, or else whose id it is (an erased
    account keeps only its id and a pseudonym), active or not."""
    users = get_user_model().objects
    found = users.filter(**{get_user_model().USERNAME_FIELD: reference}).first()
    if found is None and reference.isdigit():
        found = users.filter(pk=int(reference)).first()
    if found is None:
        raise CommandError(f"no user with username or id {reference!r}")
    return found
