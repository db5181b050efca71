"""Runs in a separate process against PostgreSQL (tests/test_postgres.py): two
claims by one person, in two rooms, race for the last of their daily budget.

    DATABASE_URL=postgres://... python -m tests.pgbudget_probe

The first claim checks the budget and reserves, then holds its transaction open
for a moment; the second starts its check meanwhile. Prints one JSON object: what
each claim got, and how many charges were written.
"""

import json
import os
import threading
import time
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from chat import budgets  # noqa: E402
from chat.models import Charge, Room, UserBudget  # noqa: E402

# Each claim reserves 60 of the day's 100 tokens: one fits, two do not.
LIMIT, NEEDED, HOLD = 100, 60, 1.0


def claim(*, user: User, room: Room, reserved: threading.Event | None, found: dict) -> None:
    try:
        with transaction.atomic():
            budgets.budget_check(room=room, user_id=user.pk, needed=NEEDED, now=timezone.now())
            Charge.objects.create(
                reply_id=room.pk,
                user=user,
                room=room,
                prompt_tokens=10,
                completion_tokens=NEEDED - 10,
                tokens=NEEDED,
                at=timezone.now(),
            )
            if reserved is not None:
                reserved.set()
                time.sleep(HOLD)
        found[room.name] = "reserved"
    except budgets.Spent as spent:
        found[room.name] = f"refused: {spent.left} left"
    finally:
        connection.close()


def main() -> dict:
    user = User.objects.create_user(f"racer-{uuid.uuid4().hex[:8]}")
    UserBudget.objects.create(user=user, tokens_per_day=LIMIT)
    first = Room.objects.create(owner=user, name="first")
    second = Room.objects.create(owner=user, name="second")
    found: dict = {}
    reserved = threading.Event()
    holder = threading.Thread(
        target=claim, kwargs={"user": user, "room": first, "reserved": reserved, "found": found}
    )
    holder.start()
    reserved.wait(timeout=30)
    claim(user=user, room=second, reserved=None, found=found)
    holder.join()
    found["charges"] = Charge.objects.filter(user=user).count()
    return found


if __name__ == "__main__":
    print(json.dumps(main()))
