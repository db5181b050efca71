"""Every Redis user through a real Sentinel: with REDIS_URL=redis+sentinel://…, the
channel layer, presence, leases, the connection bound, the rate limit and /healthz
all reach the master the sentinel names."""

import asyncio
import json
import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.test import Client

from chat import connections, leases, presence, ratelimit
from chat.layers import RoomPubSubLayer
from chat.process import PROCESS_ID, lease_key
from chat.redis_url import channel_layer_host
from tests.fakeopenai import Reply
from tests.servers import RedisSentinel
from tests.wsutil import messages_in, presence_in, receive_until, reply_finished

TTL = 0.4


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    try:
        server = RedisSentinel(tmp_path_factory.mktemp("sentinel")).start()
    except RuntimeError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def master(sentinel: RedisSentinel) -> redis.Redis:
    """The master itself, to see what each module wrote there."""
    return redis.Redis(port=sentinel.master.port)


@pytest.fixture
def via_sentinel(settings, sentinel: RedisSentinel, redis_keys: str) -> Iterator[str]:
    """REDIS_URL and the channel layer both name the sentinel, as a deployment would."""
    settings.REDIS_URL = sentinel.url
    settings.CHAT_LEASE_TTL = TTL
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layers.RoomPubSubLayer",
            "CONFIG": {
                "hosts": [channel_layer_host(sentinel.url)],
                "prefix": f"sentinel-{uuid.uuid4().hex[:8]}",
            },
        }
    }
    channel_layers.backends.clear()
    yield redis_keys
    channel_layers.backends.clear()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_room_works_with_every_redis_user_behind_the_sentinel(
    via_sentinel, master, room_factory, user, connect, model
):
    room = await sync_to_async(room_factory)()
    model.queue(Reply("Through the master."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"action": "join"}))
    await receive_until(tab, lambda frame: presence_in(frame) == ["alice"])
    await tab.send_to(text_data=json.dumps({"content": "Hi", "HEADERS": {"HX-Request": "true"}}))
    frames = await receive_until(tab, reply_finished)

    assert [m.text for f in frames for m in messages_in(f) if m.status == "complete"][-1] == (
        "Through the master."
    )
    assert master.exists(lease_key(PROCESS_ID)), "the lease is held on the master"
    assert master.hgetall(f"{via_sentinel}:connections:{user.pk}") == {PROCESS_ID.encode(): b"1"}
    assert master.zcard(f"{via_sentinel}:presence:{room.pk}") == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_leases_are_renewed_and_checked_on_the_master(via_sentinel, master):
    await leases.lease_start()
    await asyncio.sleep(TTL * 2)
    assert master.exists(lease_key(PROCESS_ID)), "renewed before it lapsed"

    other, dead = "other-host-1-123456", "gone-host-2-654321"
    assert await leases.owners_alive([dead]) is None, "a young keyspace"
    await asyncio.sleep(TTL * 1.5)
    master.set(lease_key(other), "1", px=60_000)
    assert await leases.owners_alive([other, dead]) == {other}

    await leases.lease_release()
    assert not master.exists(lease_key(PROCESS_ID))


@pytest.mark.asyncio
async def test_the_connection_bound_is_counted_on_the_master(via_sentinel, master, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    master.set(lease_key("peer-host-3-abcdef"), "1", px=60_000)
    master.hset(f"{via_sentinel}:connections:7", "peer-host-3-abcdef", 1)
    assert await connections.connection_open(user_id=7)
    assert not await connections.connection_open(user_id=7), "1 there + 1 here = 2"
    await connections.connection_close(user_id=7)
    assert master.hget(f"{via_sentinel}:connections:7", PROCESS_ID) == b"0"


@pytest.mark.asyncio
async def test_presence_and_typing_are_kept_on_the_master(via_sentinel, master):
    channel = "specific.test!one"
    presence._local[41].add(f"3:{channel}")
    try:
        await presence._store(41, {f"3:{channel}"})
        assert await presence.presence_user_ids(room_id=41) == [3]
        assert master.zcard(f"{via_sentinel}:presence:41") == 1
    finally:
        presence._local.pop(41, None)
    assert await presence.typing_hit(room_id=41, user_id=3)
    assert not await presence.typing_hit(room_id=41, user_id=3), "throttled"


@pytest.mark.asyncio
async def test_the_rate_limit_counts_on_the_master(via_sentinel, settings):
    settings.CHAT_RATE_LIMIT = 1
    assert await ratelimit.message_rate_hit(user_id=5) == 0
    assert await ratelimit.message_rate_hit(user_id=5) > 0


@pytest.mark.asyncio
async def test_the_channel_layer_delivers_through_the_master(sentinel):
    layer = RoomPubSubLayer(hosts=[channel_layer_host(sentinel.url)], prefix="sentinel-test")
    channel = await layer.new_channel()
    await layer.group_add("room-1", channel)
    await layer.group_send("room-1", {"type": "chat.message", "html": "<p>hi</p>"})
    assert (await layer.receive(channel))["html"] == "<p>hi</p>"
    await layer.flush()


@pytest.mark.django_db
def test_healthz_pings_the_master_through_the_sentinel(via_sentinel):
    assert Client().get("/healthz").json()["redis"] == "ok"
