"""Fixtures for the data binding tests."""

import pytest
from django.contrib.auth.models import Permission, User

from tests.sites.binding_app.models import Note


@pytest.fixture
def users():
    def make():
        Note.objects.all().delete()
        made = {}
        for name, perms in (
            ("alice", ["view", "add", "change", "delete"]),
            ("bob", []),
            ("carol", ["view"]),
        ):
            User.objects.filter(username=name).delete()
            user = made[name] = User.objects.create_user(name)
            for perm in perms:
                user.user_permissions.add(Permission.objects.get(codename=f"{perm}_note"))
        return made

    made = make()
    yield made
    Note.objects.all().delete()
