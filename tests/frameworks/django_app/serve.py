"""Start the Django test site: migrate its SQLite file, create the user, run Django's own server."""

import os
import sys

import django
from django.core.management import call_command


def main() -> None:
    port = sys.argv[1]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from django.contrib.auth import get_user_model

    users = get_user_model()
    username, password = os.environ["LG_APP_USER"], os.environ["LG_APP_PASSWORD"]
    if not users.objects.filter(username=username).exists():
        users.objects.create_user(username=username, password=password)
    call_command("runserver", f"127.0.0.1:{port}", use_reloader=False, use_threading=True)


if __name__ == "__main__":
    main()
