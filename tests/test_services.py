import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from chat import services
from chat.models import Message, Room
from tests.roomgroup import listen, next_frame


@pytest.mark.django_db
def test_room_create(user):
    room = services.room_create(owner=user, name="New", system_prompt="Be kind.")
    assert (room.owner, room.name, room.system_prompt, str(room)) == (
        user,
        "New",
        "Be kind.",
        "New",
    )


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_prompt_change_clears_history_and_resets_open_tabs(room_factory, message_factory):
    room = await sync_to_async(room_factory)(name="Old name", system_prompt="old")
    hello = await sync_to_async(message_factory)(room, "hello")
    channel = await listen(room.pk)

    await sync_to_async(services.room_update)(room=room, name="New name", system_prompt="new")

    event = await asyncio.wait_for(get_channel_layer().receive(channel), 5)
    assert (event["type"], event["cleared_through"]) == ("chat.room_reset", hello.pk)
    assert 'id="messages" hx-swap-oob="innerHTML"' in event["html"]
    assert "New name" in event["html"] and "new" in event["html"]
    assert await Message.objects.filter(room=room).acount() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_other_setting_changes_reach_every_tab_header_at_once(room_factory):
    room = await sync_to_async(room_factory)(name="Old name", system_prompt="same")
    channel = await listen(room.pk)

    await sync_to_async(services.room_update)(
        room=room,
        name="New name",
        system_prompt="same",
        model="other-model",
        ai_answers="mentioned",
    )

    html = await next_frame(channel)
    assert 'id="room-title" hx-swap-oob="true"' in html
    assert "New name" in html and "other-model" in html
    assert "The AI answers only messages starting with @ai or !" in html


@pytest.mark.django_db
def test_members_are_added_by_username_and_not_twice(room_factory, user_factory):
    room = room_factory()
    bob = user_factory("bob")
    assert services.room_member_add(room=room, username=" bob ") == bob
    services.room_member_add(room=room, username="bob")
    assert list(room.members.all()) == [bob]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "error"),
    [
        ("nobody", "There is no user called “nobody”."),
        ("alice", "The owner is always in the room."),
    ],
)
def test_adding_a_member_can_fail_with_a_reason(room_factory, username, error):
    room = room_factory()
    with pytest.raises(services.MemberError, match=error):
        services.room_member_add(room=room, username=username)
    assert room.members.count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_removing_a_member_tells_the_room(room_factory, user_factory):
    room = await sync_to_async(room_factory)()
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    layer = get_channel_layer()
    channel = await listen(room.pk)

    await sync_to_async(services.room_member_remove)(room=room, user_id=bob.pk)

    event = await asyncio.wait_for(layer.receive(channel), 5)
    assert event == {"type": "chat.member_removed", "user_id": bob.pk}
    assert await room.members.acount() == 0


@pytest.mark.django_db(transaction=True)
def test_marking_a_deleted_room_read_is_harmless(room_factory, user):
    room = room_factory()
    room_id = room.pk
    services.room_delete(room=room)
    services.room_read_mark(room_id=room_id, user_id=user.pk)
    assert not Room.objects.filter(pk=room_id).exists()
