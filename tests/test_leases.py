"""Process leases, and the sweep that marks a dead process's replies interrupted.

Against the tests' real Redis (and the database, for deployments without Redis).
"""

import asyncio
import logging
from datetime import timedelta

import pytest
import redis
from asgiref.sync import sync_to_async
from django.utils import timezone

from chat import leases
from chat.models import Message, ProcessLease
from chat.turns import watchdog
from tests.fakeopenai import Reply
from tests.servers import free_port
from tests.wsutil import messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

TTL = 0.4
DEAD = "gone-host-4242-abcdef"


@pytest.fixture(autouse=True)
def short_leases(settings) -> None:
    settings.CHAT_LEASE_TTL = TTL


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


async def trusted_keyspace() -> None:
    """The first check starts the keyspace's clock; absences count once it is a TTL old."""
    assert await leases.owners_alive([DEAD]) is None, "a young keyspace proves nothing"
    await asyncio.sleep(TTL * 1.5)


async def test_a_process_identity_names_its_host_and_pid():
    host, pid, token = leases.PROCESS_ID.rsplit("-", 2)
    assert host and pid.isdecimal() and len(token) == 6


async def test_a_lease_lives_while_renewed_and_is_gone_once_released(redis_client):
    await leases.lease_start()
    key = leases.lease_key(leases.PROCESS_ID)
    assert 0 < redis_client.pttl(key) <= TTL * 1000
    await asyncio.sleep(TTL * 2)
    assert redis_client.exists(key), "renewed before it lapsed"

    await leases.lease_release()
    assert not redis_client.exists(key)


async def test_owners_alive_are_those_whose_lease_has_not_lapsed(redis_client):
    await trusted_keyspace()
    other = "other-host-1-123456"
    redis_client.set(leases.lease_key(other), "1", px=int(TTL * 1000))
    alive = await leases.owners_alive([other, DEAD, leases.PROCESS_ID])
    assert alive == {other, leases.PROCESS_ID}

    await asyncio.sleep(TTL * 1.5)
    assert await leases.owners_alive([other]) == set()


async def test_without_redis_the_lease_is_a_row_in_the_database(settings):
    settings.REDIS_URL = ""
    await leases.lease_start()
    assert await ProcessLease.objects.filter(process=leases.PROCESS_ID).aexists()
    await ProcessLease.objects.acreate(process="fresh-1-aaaaaa", renewed_at=timezone.now())
    await ProcessLease.objects.acreate(
        process="lapsed-1-bbbbbb", renewed_at=timezone.now() - timedelta(seconds=TTL * 2)
    )
    alive = await leases.owners_alive(["fresh-1-aaaaaa", "lapsed-1-bbbbbb", DEAD])
    assert alive == {"fresh-1-aaaaaa"}

    await leases.lease_release()
    assert not await ProcessLease.objects.filter(process=leases.PROCESS_ID).aexists()


async def test_unreachable_redis_leaves_other_processes_replies_alone(
    settings, room_factory, caplog
):
    room, other_room = await sync_to_async(room_factory)(), await sync_to_async(room_factory)()
    owned = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=DEAD, content="kept"
    )
    ownerless = await Message.objects.acreate(room=other_room, role="assistant", status="streaming")
    await Message.objects.filter(pk=ownerless.pk).aupdate(
        updated_at=timezone.now() - timedelta(seconds=settings.CHAT_STALE_AFTER + 1)
    )
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"

    with caplog.at_level(logging.WARNING, logger="chat.leases"):
        assert await watchdog.turns_recover() == 1

    await owned.arefresh_from_db()
    await ownerless.arefresh_from_db()
    assert (owned.status, owned.content) == ("streaming", "kept"), "another process may own it"
    assert ownerless.status == "interrupted", "no owner: the staleness window still applies"
    assert "cannot check other processes' leases" in caplog.text


async def test_a_reply_is_recovered_once(room_factory, redis_client):
    room = await sync_to_async(room_factory)()
    await Message.objects.acreate(room=room, role="assistant", status="streaming", owner=DEAD)
    await trusted_keyspace()
    assert await watchdog.turns_recover() == 1
    # The UPDATE is conditional on the row still streaming: a second sweep, here
    # or in another process, finds nothing to do and tells no tab again.
    assert await watchdog.turns_recover() == 0


async def test_a_dead_owners_reply_is_interrupted_for_open_tabs_and_the_room_is_free(
    room_factory, connect, model
):
    room = await sync_to_async(room_factory)()
    await Message.objects.acreate(room=room, role="user", content="question")
    reply = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=DEAD, content="half an ans"
    )
    tab = await connect(f"/ws/chat/{room.pk}/")

    # This process's sweep finds the owner's lease lapsed.
    final = [m for m in messages_in((await receive_until(tab, reply_finished))[-1])][-1]
    assert (final.pk, final.status, final.text) == (reply.pk, "interrupted", "half an ans")
    assert "Continue" in final.html

    model.queue(Reply("A new answer."))
    await tab.send_to(text_data=send("next question"))
    frames = await receive_until(tab, lambda f: "A new answer." in f and reply_finished(f))
    assert [m.status for m in messages_in(frames[-1])][-1] == "complete"


async def test_a_live_owners_reply_is_left_alone(room_factory, connect, redis_client):
    room = await sync_to_async(room_factory)()
    other = "busy-host-7-654321"
    redis_client.set(leases.lease_key(other), "1", px=60_000)
    reply = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=other
    )
    await connect(f"/ws/chat/{room.pk}/")
    await asyncio.sleep(TTL * 3)
    await reply.arefresh_from_db()
    assert reply.status == "streaming"


async def test_a_lease_that_cannot_be_renewed_is_logged_and_the_process_goes_on(settings, caplog):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    with caplog.at_level(logging.WARNING, logger="chat.leases"):
        await leases.lease_start()
        await asyncio.sleep(TTL)
    assert "cannot renew the lease of process" in caplog.text
    assert caplog.text.count("cannot renew") == 1, "said once per outage, not every renewal"
    await leases.lease_release()


async def test_after_redis_restarts_no_lease_counts_as_lapsed_for_a_while(
    room_factory, redis_client, redis_keys
):
    room = await sync_to_async(room_factory)()
    other = "live-host-9-fedcba"
    reply = await Message.objects.acreate(
        room=room, role="assistant", status="streaming", owner=other
    )
    await trusted_keyspace()
    # A Redis restart (or flush) loses every lease at once, the live ones too:
    # their owners renew within a quarter TTL, so until a TTL has passed an
    # absent lease proves nothing.
    redis_client.delete(*redis_client.keys(f"{redis_keys}:*"))
    assert await watchdog.turns_recover() == 0
    redis_client.set(leases.lease_key(other), "1", px=60_000)
    await asyncio.sleep(TTL * 1.5)
    assert await watchdog.turns_recover() == 0
    await reply.arefresh_from_db()
    assert reply.status == "streaming"
