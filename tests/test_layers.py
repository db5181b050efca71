"""The channel layer on a Redis of its own, which these tests break: a dropped
subscription makes every tab re-sync; a lost Redis closes tabs with a code the page retries."""

import asyncio
import json
from collections.abc import Iterator

import pytest
import redis
from channels.layers import channel_layers, get_channel_layer
from prometheus_client import REGISTRY

from tests.servers import RedisServer

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def own_redis(settings) -> Iterator[RedisServer]:
    server = RedisServer().start()
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layers.RoomPubSubLayer",
            "CONFIG": {"hosts": [server.url], "prefix": "layers"},
        }
    }
    channel_layers.backends.clear()
    try:
        yield server
    finally:
        server.stop()
        channel_layers.backends.clear()


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room")


async def test_a_dropped_subscription_tells_every_tab_to_resync(own_redis, room, connect):
    tabs = [await connect(f"/ws/chat/{room.pk}/") for _ in range(2)]
    for tab in tabs:
        await tab.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
        assert 'id="room-version"' in await tab.receive_from()
        assert await tab.receive_nothing(timeout=0.2)

    # Redis stays up: redis-py reconnects and re-subscribes by itself, but what
    # was published in between is gone.
    killed = redis.Redis.from_url(own_redis.url).client_kill_filter(_type="pubsub")
    assert killed >= 1

    for tab in tabs:
        assert 'id="sync-request"' in await tab.receive_from(timeout=5)
    assert REGISTRY.get_sample_value("chat_layer_drops_total", {"recovered": "yes"}) >= 1


async def test_losing_redis_closes_tabs_with_a_code_the_page_retries(own_redis, room, connect):
    tab = await connect(f"/ws/chat/{room.pk}/")
    own_redis.stop()
    assert await tab.receive_output(timeout=10) == {"type": "websocket.close", "code": 1012}
    assert REGISTRY.get_sample_value("chat_layer_drops_total", {"recovered": "no"}) >= 1


async def test_a_channel_that_falls_behind_holds_only_each_messages_newest_event():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add("room-behind", channel)
    for seq in range(5):
        await layer.group_send(
            "room-behind", {"type": "chat.message", "key": "message-1", "seq": seq}
        )
    await layer.group_send("room-behind", {"type": "chat.member_removed", "user_id": 7})
    await layer.group_send("room-behind", {"type": "chat.message", "key": "message-2", "seq": 0})
    await layer.group_send("room-behind", {"type": "chat.message", "key": "message-1", "seq": 5})
    await asyncio.sleep(0.5)  # all delivered into the inbox, none read yet

    received = []
    while True:
        try:
            received.append(await asyncio.wait_for(layer.receive(channel), 0.3))
        except TimeoutError:
            break
    # message-1 keeps its first place with its newest version; the rest in order.
    assert [(e["type"], e.get("key"), e.get("seq")) for e in received] == [
        ("chat.message", "message-1", 5),
        ("chat.member_removed", None, None),
        ("chat.message", "message-2", 0),
    ]
