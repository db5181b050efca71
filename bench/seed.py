"""Prepare the benchmark database: `python -m bench.seed ROOMS` migrates, then adds empty rooms.

Prints the rooms' pks as JSON. One process does both, since starting Django
is the slow part; it is configured by the same environment as the servers.
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from chat.models import Room  # noqa: E402


def main(rooms: int) -> None:
    call_command("migrate", verbosity=0, interactive=False)
    created = Room.objects.bulk_create(Room(name=f"Bench room {i}") for i in range(rooms))
    print(json.dumps([room.pk for room in created]))


if __name__ == "__main__":
    main(int(sys.argv[1]))
