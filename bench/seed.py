"""Prepare the benchmark database: `python -m bench.seed ROOMS USERS`.

Migrates, then adds USERS users, each logged in with one session, and ROOMS
empty rooms that every user is a member of. Prints {"rooms": [pk...],
"sessions": [session key per user]} as JSON. One process does it all, since
starting Django is the slow part; it reads the same environment as the servers.
"""

import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from importlib import import_module  # noqa: E402

from django.conf import settings  # noqa: E402
from django.contrib import auth  # noqa: E402
from django.core.management import call_command  # noqa: E402

from chat.models import Room  # noqa: E402


def main(rooms: int, users: int) -> None:
    call_command("migrate", verbosity=0, interactive=False)
    # No password: nobody logs in through the form, and hashing 200 of them would be slow.
    User = auth.get_user_model()
    people = User.objects.bulk_create(
        User(username=f"bench{i}", password="!") for i in range(users)
    )
    store = import_module(settings.SESSION_ENGINE).SessionStore
    sessions = []
    for user in people:
        # What auth.login() stores, without a request.
        session = store()
        session[auth.SESSION_KEY] = str(user.pk)
        session[auth.BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        session[auth.HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        sessions.append(session.session_key)
    created = Room.objects.bulk_create(
        Room(name=f"Bench room {i}", owner=people[0]) for i in range(rooms)
    )
    Membership = Room.members.through
    Membership.objects.bulk_create(
        Membership(room_id=room.pk, user_id=user.pk) for room in created for user in people
    )
    print(json.dumps({"rooms": [room.pk for room in created], "sessions": sessions}))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
