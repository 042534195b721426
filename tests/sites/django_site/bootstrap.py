"""``python -m tests.sites.django_site.bootstrap``: migrate the database, add the superuser.

Run in its own process: the pytest process is already configured with the suite's settings.
"""

import os

SUPERUSER = "ada"
SUPERUSER_PASSWORD = "analytical-engine-1843"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.sites.django_site.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    get_user_model().objects.create_superuser(SUPERUSER, "ada@example.com", SUPERUSER_PASSWORD)


if __name__ == "__main__":
    main()
