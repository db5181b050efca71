"""S5: open a room holding many messages; time the page and count its queries.

    python -m bench.render 100 1000 10000

Runs in its own process against the benchmark database (DATABASE_URL): for
each size it fills a room, then renders the room page with Django's test
client, the full view and middleware, no network. Prints JSON.
"""

import json
import os
import statistics
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from chat import rendering  # noqa: E402
from chat.models import Message, Room  # noqa: E402

OWNER = get_user_model().objects.create(username="bench-render", password="!")
RENDERS = 7
FRAGMENTS = 200
QUESTION = "How do I keep a websocket alive behind a proxy that closes idle connections?"
# A typical answer: paragraphs, a list and inline code, so the Markdown filter has work.
ANSWER = (
    "Send a ping every **30 seconds**; most proxies close a connection after 60 idle ones.\n\n"
    "1. Set `proxy_read_timeout` above the ping interval.\n"
    "2. Keep the `Upgrade` and `Connection` headers.\n"
    "3. Reconnect with backoff when the socket closes.\n\n"
    "The browser answers pings by itself, so the client needs no code for that part."
)


def fill(size: int) -> Room:
    room = Room.objects.create(name=f"{size} messages", owner=OWNER)
    Message.objects.bulk_create(
        (
            Message(room=room, role=Message.Role.USER, content=QUESTION)
            if i % 2 == 0
            else Message(room=room, role=Message.Role.ASSISTANT, content=ANSWER)
        )
        for i in range(size)
    )
    return room


def measure(size: int) -> dict[str, float | int]:
    """Opening a room of `size` messages: the first render's queries, and the renders' times."""
    room, client = fill(size), _logged_in()
    url = room.get_absolute_url()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url)
        first = time.perf_counter() - started
    # Read now: every request start empties Django's query log.
    query_count = len(queries)
    assert response.status_code == 200, response.status_code
    times = [first]
    for _ in range(RENDERS - 1):
        started = time.perf_counter()
        client.get(url)
        times.append(time.perf_counter() - started)
    return {
        "messages": size,
        "queries": query_count,
        "first_ms": round(first * 1000, 1),
        "p50_ms": round(statistics.median(times) * 1000, 1),
        "bytes": len(response.content),
    }


def _logged_in() -> Client:
    client = Client()
    client.force_login(OWNER)
    return client


def fragment_us(message: Message) -> float:
    """One message's fragment alone: what each message adds to the page."""
    rendering.message_oob(message)
    started = time.perf_counter()
    for _ in range(FRAGMENTS):
        rendering.message_oob(message)
    return round((time.perf_counter() - started) / FRAGMENTS * 1e6, 1)


def main(sizes: list[int]) -> dict[str, object]:
    # The process's first page pays for template compilation and imports; not the room's cost.
    room = fill(2)
    _logged_in().get(room.get_absolute_url())
    return {
        "rooms": [measure(size) for size in sizes],
        "fragment_us": {
            role: fragment_us(Message(pk=1, room=room, role=role, content=text))
            for role, text in (("user", QUESTION), ("assistant", ANSWER))
        },
    }


if __name__ == "__main__":
    print(json.dumps(main([int(size) for size in sys.argv[1:]])))
