"""Reactions over the room socket: toggled, shown in every tab with who reacted, refused
with nothing saved when they break the rules, and carried across processes by Redis."""

import json
import re
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from yarl import URL

from chat import reactions
from chat.models import Reaction
from tests.fakeopenai import FakeOpenAI
from tests.live import (
    Stack,
    browser_session,
    create_room,
    frames_until,
    open_socket,
    running_stack,
    sign_up,
)
from tests.wsutil import action, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


def react(message_id: int, emoji: str = "👍") -> str:
    # As the page's react form sends it through htmx's ws extension: values as strings.
    return action("react", message=str(message_id), emoji=emoji, HEADERS={"HX-Request": "true"})


def reactions_of(message_id: int):
    return lambda frame: f'id="reactions-{message_id}"' in frame


def refused(frame: str) -> bool:
    return 'data-outcome="refused"' in frame


@sync_to_async
def saved() -> list[tuple[int, str, str]]:
    return list(Reaction.objects.values_list("message_id", "user__username", "emoji"))


@pytest.fixture
def shared(room_factory, message_factory, user, user_factory):
    bob = user_factory("bob")
    room = room_factory(name="Shared")
    room.members.add(bob)
    message = message_factory(room, "Hello both", author=user)
    return room, message, bob


@pytest.mark.asyncio
async def test_a_reaction_reaches_every_tab_with_who_reacted_and_the_same_again_takes_it_back(
    shared, connect
):
    room, message, bob = shared
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)

    await bob_tab.send_to(text_data=react(message.pk, "👍"))
    for tab in (alice_tab, bob_tab):
        frame = (await receive_until(tab, reactions_of(message.pk)))[-1]
        assert 'hx-swap-oob="true"' in frame
        assert f'data-emoji="👍" data-users="{bob.pk}" title="bob"' in frame
        assert 'aria-label="👍 from bob"' in frame
    await alice_tab.send_to(text_data=react(message.pk, "👍"))
    frame = (await receive_until(bob_tab, reactions_of(message.pk)))[-1]
    assert 'title="bob, alice"' in frame and '>👍 <span class="reactions__count">2</span>' in frame
    assert sorted(await saved()) == [(message.pk, "alice", "👍"), (message.pk, "bob", "👍")]

    await bob_tab.send_to(text_data=react(message.pk, "👍"))
    # alice's tab was sent every state in turn; the last is hers alone.
    frames = await receive_until(
        alice_tab, lambda f: reactions_of(message.pk)(f) and "1</span>" in f
    )
    assert 'title="alice"' in frames[-1] and "bob" not in frames[-1]
    assert await saved() == [(message.pk, "alice", "👍")]


@pytest.mark.asyncio
async def test_a_reaction_outside_the_set_is_refused_and_nothing_saved(shared, connect):
    room, message, _ = shared
    tab = await connect(f"/ws/chat/{room.pk}/")
    for emoji in ("💩", "", "👍👍", 1):
        await tab.send_to(text_data=action("react", message=message.pk, emoji=emoji))
        frame = (await receive_until(tab, refused))[-1]
        assert "Only these reactions can be added: 👍 ❤️ 😂 😮 🙏 👀." in frame
    assert await saved() == []


@pytest.mark.asyncio
async def test_a_reaction_on_another_room_s_message_is_refused(
    shared, connect, room_factory, message_factory
):
    room, _, _ = shared
    elsewhere = await sync_to_async(room_factory)(name="Elsewhere")
    other = await sync_to_async(message_factory)(elsewhere, "Not here")
    tab = await connect(f"/ws/chat/{room.pk}/")
    for message_id in (other.pk, 0, "x"):
        await tab.send_to(text_data=action("react", message=message_id, emoji="👍"))
        frame = (await receive_until(tab, refused))[-1]
        assert "That message is not in this room." in frame
    assert await saved() == []


@pytest.mark.asyncio
async def test_reactions_count_toward_the_rate_limit(shared, connect, settings):
    settings.CHAT_RATE_LIMIT = 2
    room, message, _ = shared
    tab = await connect(f"/ws/chat/{room.pk}/")
    for emoji in ("👍", "❤️"):
        await tab.send_to(text_data=react(message.pk, emoji))
        await receive_until(tab, reactions_of(message.pk))
    await tab.send_to(text_data=react(message.pk, "😂"))
    frame = (await receive_until(tab, refused))[-1]
    assert "You are sending messages too fast." in frame
    assert sorted(e for _, _, e in await saved()) == sorted(["👍", "❤️"])


def test_a_page_load_shows_the_reactions_beside_each_message_not_in_it(
    room_factory, message_factory, user, user_factory
):
    room = room_factory(name="Loaded")
    message = message_factory(room, "Look", author=user)
    reply = message_factory(room, "Answer", role="assistant")
    bob = user_factory("bob")
    Reaction.objects.create(message=message, user=bob, emoji="👀")
    Reaction.objects.create(message=message, user=user, emoji="👀")
    browser = Client()
    browser.force_login(user)
    html = browser.get(f"/chat/{room.pk}/").content.decode()
    article = re.search(rf'<article id="message-{message.pk}".*?</article>', html, re.S)
    assert article and "reactions" not in article[0]
    assert f'data-users="{bob.pk} {user.pk}" title="bob, alice"' in html
    # Every message takes reactions; only replies take feedback.
    assert f'id="reactions-{reply.pk}"' in html
    assert f'id="feedback-{reply.pk}"' in html and f'id="feedback-{message.pk}"' not in html


def test_a_reconnecting_page_gets_its_messages_reactions_as_they_are_now(
    room_factory, message_factory, user, user_factory
):
    room = room_factory(name="Reconnect")
    liked, plain = message_factory(room, "Liked"), message_factory(room, "Plain")
    elsewhere = message_factory(room_factory(name="Other"), "Elsewhere")
    Reaction.objects.create(message=liked, user=user, emoji="❤️")
    Reaction.objects.create(message=elsewhere, user=user, emoji="👍")
    browser = Client()
    browser.force_login(user)
    ids = f"{liked.pk},{plain.pk},{elsewhere.pk},x"
    html = browser.get(f"/chat/{room.pk}/reactions/?ids={ids}").content.decode()
    assert html.count('hx-swap-oob="true"') == 2
    assert f'<div id="reactions-{liked.pk}"' in html and 'title="alice"' in html
    # A message whose reactions all went comes back empty; another room's is not sent.
    assert f'<div id="reactions-{plain.pk}"' in html
    assert f"reactions-{elsewhere.pk}" not in html
    stranger = Client()
    stranger.force_login(user_factory("mallory"))
    assert stranger.get(f"/chat/{room.pk}/reactions/?ids={liked.pk}").status_code == 404


def test_reactions_are_grouped_in_the_set_s_order(room_factory, message_factory, user):
    room = room_factory()
    message = message_factory(room)
    for emoji in ("👀", "👍"):
        Reaction.objects.create(message=message, user=user, emoji=emoji)
    groups = reactions.reactions_by_message(message_ids=[message.pk])[message.pk]
    assert [group.emoji for group in groups] == ["👍", "👀"]


# Two daphne processes behind one Redis: a reaction sent to one reaches a tab of the other.


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("reactions"),
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=2,
    ) as stack:
        yield stack


@pytest.mark.asyncio
@pytest.mark.integration
async def test_a_reaction_crosses_processes(stack):
    first, second = stack.servers
    async with browser_session() as alice, browser_session() as bob:
        bob_name = await sign_up(bob, first)
        room_id = await create_room(alice, first, "Two processes")
        edit = f"{first.http_url}/chat/{room_id}/edit/"
        async with alice.get(edit) as page:
            assert page.status == 200
        token = alice.cookie_jar.filter_cookies(URL(first.http_url))["csrftoken"].value
        async with alice.post(
            f"{first.http_url}/chat/{room_id}/members/",
            data={"username": bob_name, "csrfmiddlewaretoken": token},
            headers={"Referer": edit, "HX-Request": "true"},
        ) as shared:
            assert shared.status == 200
        alice_socket = await open_socket(alice, first, room_id)
        bob_socket = await open_socket(bob, second, room_id)
        await alice_socket.send_str(json.dumps({"content": "React to me"}))
        await frames_until(bob_socket, lambda f: "React to me" in f)
        (message_id,) = stack.rows(
            "select id from chat_message where room_id = ? and role = 'user'", room_id
        )[0]
        await alice_socket.send_str(react(message_id, "🙏"))
        frames = await frames_until(bob_socket, reactions_of(message_id))
        assert 'data-emoji="🙏"' in frames[-1]
        assert stack.rows("select emoji from chat_reaction") == [("🙏",)]
        await alice_socket.close()
        await bob_socket.close()
