"""Runs in a separate process against PostgreSQL (tests/test_postgres_search.py):
message search on PostgreSQL's pg_trgm index, as chat.search runs it there.

    DATABASE_URL=postgres://... python -m tests.pgsearch_probe

Creates two users' rooms, searches, and prints one JSON object of what it found.
"""

import json
import os
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402

from chat import search  # noqa: E402
from chat.models import Message, Room  # noqa: E402


def main() -> None:
    users = get_user_model().objects
    alice = users.create_user(f"alice-{uuid.uuid4().hex[:6]}")
    bob = users.create_user(f"bob-{uuid.uuid4().hex[:6]}")
    mine = Room.objects.create(owner=alice, name="Mine")
    private = Room.objects.create(owner=bob, name="Private")
    for room, author, text in [
        (mine, alice, "급여에 포함하여 지급되는 퇴직금의 소득 구분은?"),
        (mine, alice, 'Quote "a phrase" AND 100% of_it'),
        (private, bob, "Bob's 퇴직금 secret"),
    ]:
        Message.objects.create(room=room, author=author, role="user", content=text)
    Message.objects.create(room=mine, role="assistant", status="streaming", content="퇴직금 half")

    def found(query: str) -> list[str]:
        return [hit.message.content for hit in search.message_search(user=alice, query=query).hits]

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chat_message_content_trgm'"
        )
        index = cursor.fetchone()
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        available = cursor.fetchone() is not None
        # Whether the search's own query can use the partial index at all.
        cursor.execute("SET enable_seqscan = off")
        plan = search._matching("퇴직금").exclude(status="streaming").explain()
        cursor.execute("RESET enable_seqscan")
    result = {
        "pg_trgm": available,
        "index": index[0] if index else None,
        "plan": plan,
        "korean": found("퇴직금"),
        "two": found("소득"),
        "one": found("득"),
        "quotes": found('"a phrase"'),
        "percent": found("100%"),
        "underscore": found("of_it"),
        "not_a_wildcard": found("o_it"),
        "snippet": str(search.message_search(user=alice, query="퇴직금").hits[0].snippet),
    }
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
