"""The per-user socket bound, counted in the tests' real Redis across processes."""

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from chat import connections, leases
from config.asgi import application
from tests.conftest import ORIGIN, session_cookie

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def bound(settings) -> int:
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 3
    return 3


def held_by(redis_client: redis.Redis, user_id: int, process: str, count: int) -> None:
    """Another process holds `count` of the user's sockets."""
    redis_client.hset(connections._key(user_id), process, count)


async def test_sockets_held_by_another_live_process_count(bound, redis_client, user):
    other = "peer-host-2-abcdef"
    redis_client.set(leases.lease_key(other), "1", px=60_000)
    held_by(redis_client, user.pk, other, 2)
    await leases.lease_start()
    assert await connections.connection_open(user_id=user.pk)
    assert not await connections.connection_open(user_id=user.pk), "2 there + 1 here = 3"

    await connections.connection_close(user_id=user.pk)
    assert await connections.connection_open(user_id=user.pk), "a closed socket frees its place"


async def test_a_dead_process_frees_its_sockets_places(bound, redis_client, user):
    held_by(redis_client, user.pk, "dead-host-3-abcdef", 3)
    await leases.lease_start()
    for _ in range(bound):
        assert await connections.connection_open(user_id=user.pk)
    assert not await connections.connection_open(user_id=user.pk)
    assert redis_client.hgetall(connections._key(user.pk)) == {
        leases.PROCESS_ID.encode(): str(bound).encode()
    }


async def test_the_bound_refuses_the_socket_past_it(bound, redis_client, room_factory, user):
    room = await sync_to_async(room_factory)()
    held_by(redis_client, user.pk, leases.PROCESS_ID, bound)
    cookie = await sync_to_async(session_cookie)(user)
    communicator = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/", [ORIGIN, cookie])
    # Accepted, then closed with the code: a close before accept is a bare 1006 to a browser.
    assert await communicator.connect() == (True, None)
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4429}


async def test_unreachable_redis_lets_sockets_in(bound, settings, user, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    for _ in range(bound + 1):
        assert await connections.connection_open(user_id=user.pk)
    await connections.connection_close(user_id=user.pk)
    assert "cannot count user" in caplog.text
