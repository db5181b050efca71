"""Edit and resend over the room websocket (RoomFrames._edit, chat.turns.actions.message_edit)."""

import json

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def edit(message: object, content: object) -> str:
    # As htmx's ws-send sends the Edit form: every value a string.
    return json.dumps({"action": "edit", "message": message, "content": content, "HEADERS": {}})


@sync_to_async
def rows(room) -> list[tuple[str, str, str]]:
    return list(room.messages.values_list("role", "status", "content"))


@sync_to_async
def user_message_pk(room, content: str) -> int:
    return room.messages.get(role="user", content=content).pk


def notice(frame: str) -> bool:
    return 'id="composer-answer"' in frame and 'role="alert"' in frame


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room")


async def ask(tab, content: str) -> None:
    await tab.send_to(text_data=send(content))
    await receive_until(tab, reply_finished)


async def test_an_edit_changes_the_message_and_replaces_its_reply_in_every_tab(
    room, connect, model
):
    model.queue(Reply("Paris."), Reply("Rome."))
    tab1 = await connect(f"/ws/chat/{room.pk}/")
    tab2 = await connect(f"/ws/chat/{room.pk}/")
    await ask(tab1, "Capital of Frnace?")
    await receive_until(tab2, reply_finished)
    question = await user_message_pk(room, "Capital of Frnace?")
    (old_reply,) = [m for m in await rows(room) if m[0] == "assistant"]

    await tab1.send_to(text_data=edit(str(question), "Capital of Italy?"))
    for tab in (tab1, tab2):
        shown = [m for f in await receive_until(tab, reply_finished) for m in messages_in(f)]
        edited = [m for m in shown if m.pk == question]
        assert edited and edited[0].text == "Capital of Italy?"
        replies = [m for m in shown if m.role == "assistant"]
        assert {m.pk for m in replies} == {question + 1}, "the old reply is replaced in place"
        assert replies[0].status == "streaming" and replies[-1].text == "Rome."
    assert await rows(room) == [
        ("user", "complete", "Capital of Italy?"),
        ("assistant", "complete", "Rome."),
    ]
    assert old_reply == ("assistant", "complete", "Paris.")
    second = model.wait_for_requests(2)[1]
    assert second["messages"] == [{"role": "user", "content": "Capital of Italy?"}]


async def test_the_edit_control_is_on_user_messages(room, connect, model):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("hello"))
    frames = await receive_until(tab, lambda f: any(m.role == "user" for m in messages_in(f)))
    (user_message,) = [m for m in messages_in(frames[-1]) if m.role == "user"]
    # A message carries its text as written; the page holds the one edit form, which
    # room-tools.js fills with it on the room's last user message.
    assert '<template class="message__source">hello</template>' in user_message.html
    assert 'name="action" value="edit"' not in user_message.html
    await receive_until(tab, reply_finished)
    page = await sync_to_async(page_html)(room)
    form = page.split('<template id="edit-fields">')[1].split("</template>")[0]
    assert 'name="action" value="edit"' in form and 'name="message" value=""' in form
    assert page.count('name="action" value="edit"') == 1


def page_html(room) -> str:
    browser = Client()
    browser.force_login(room.owner)
    return browser.get(room.get_absolute_url()).content.decode()


async def test_only_the_last_user_message_can_be_edited(room, connect, model):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await ask(tab, "first")
    await ask(tab, "second")
    before = await rows(room)
    await tab.send_to(text_data=edit(await user_message_pk(room, "first"), "changed"))
    (answer,) = await receive_until(tab, notice)
    assert "Only the room&#x27;s last message can be edited." in answer
    assert await rows(room) == before
    assert len(model.requests) == 2


async def test_someone_else_s_message_cannot_be_edited(room, connect, model, user_factory):
    bob = await sync_to_async(user_factory)("bob")
    await sync_to_async(room.members.add)(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await ask(alice_tab, "alice's question")
    await receive_until(bob_tab, reply_finished)
    before = await rows(room)

    await bob_tab.send_to(text_data=edit(await user_message_pk(room, "alice's question"), "bob"))
    (answer,) = await receive_until(bob_tab, notice)
    assert "You can edit only your own messages." in answer
    assert await rows(room) == before


async def test_an_edit_while_a_reply_streams_is_refused(room, connect, model):
    model.queue(Reply("First."), Reply("slow " * 30, tokens_per_second=40))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await ask(tab, "one")
    await tab.send_to(text_data=send("two"))
    await receive_until(tab, lambda f: any(m.status == "streaming" for m in messages_in(f)))
    await tab.send_to(text_data=edit(await user_message_pk(room, "two"), "changed"))
    frames = await receive_until(tab, notice)
    assert "Wait for the current reply to finish, then edit." in frames[-1]
    await receive_until(tab, reply_finished)
    assert [content for _role, _status, content in await rows(room)][:3] == ["one", "First.", "two"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("   ", "This field is required."),
        (None, "This field is required."),
        ("x" * 8001, "Ensure this value has at most 8000 characters (it has 8001)."),
    ],
)
async def test_edited_text_is_validated_like_a_new_message(room, connect, model, content, error):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await ask(tab, "original")
    before = await rows(room)
    await tab.send_to(text_data=edit(await user_message_pk(room, "original"), content))
    (answer,) = await receive_until(tab, notice)
    assert error in answer
    assert await rows(room) == before


@pytest.mark.parametrize("message", [None, "x", 0, -1, 999_999])
async def test_an_edit_of_no_such_message_is_refused(room, connect, model, message):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await ask(tab, "original")
    before = await rows(room)
    await tab.send_to(text_data=edit(message, "changed"))
    (answer,) = await receive_until(tab, notice)
    assert "message" in answer
    assert await rows(room) == before
