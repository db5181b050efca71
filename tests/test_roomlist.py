"""The room list's live updates: who hears that a room changed, and at what cost."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import roomlist
from chat.broadcast import user_group


async def listen(user_id: int) -> str:
    """A channel in the user's group, as a room list page's consumer would have."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(user_group(user_id), channel)
    return channel


@pytest.mark.django_db
def test_the_room_s_people_take_one_query_however_many_members(
    room_factory, user_factory, user, django_assert_num_queries
):
    room = room_factory()
    with django_assert_num_queries(1):
        assert roomlist.room_user_ids(room_id=room.pk) == {user.pk}
    members = [user_factory(f"member{i}") for i in range(5)]
    room.members.add(*members)
    with django_assert_num_queries(1):
        assert roomlist.room_user_ids(room_id=room.pk) == {user.pk, *(m.pk for m in members)}
    with django_assert_num_queries(1):
        assert roomlist.room_user_ids(room_id=room.pk + 1000) == set()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_owner_and_every_member_hear_of_a_change_and_no_one_else(
    room_factory, user_factory, user
):
    room = await sync_to_async(room_factory)()
    make_user = sync_to_async(user_factory)
    bob, carol, dave = [await make_user(name) for name in ("bob", "carol", "dave")]
    await room.members.aadd(bob, carol)
    channels = {u.pk: await listen(u.pk) for u in (user, bob, carol, dave)}

    await roomlist.room_changed_send(room_id=room.pk)

    layer = get_channel_layer()
    for user_id in (user.pk, bob.pk, carol.pk):
        event = await asyncio.wait_for(layer.receive(channels[user_id]), 5)
        assert event == {"type": "rooms.changed", "room_id": room.pk}
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channels[dave.pk]), 0.3)
