"""The room websocket, through the full ASGI stack, on the real channels-redis layer."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.models import Session
from prometheus_client import REGISTRY

from chat import broadcast, reply_stream, services
from chat.models import Message
from config.asgi import application
from tests.conftest import ORIGIN, replies_finished, session_cookie
from tests.fakeopenai import Reply
from tests.wsutil import (
    messages_in,
    page_of,
    receive_until,
    reply_finished,
    room_version_in,
    send,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


CLIENT_ID = "5b0e6a3c-95d4-4f1e-9a57-0c8d2f6b1e42"


@sync_to_async
def rows(room) -> list[tuple[str, str, str]]:
    return list(room.messages.values_list("role", "status", "content"))


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room", system_prompt="You are terse.")


async def test_message_and_streamed_reply_reach_every_tab(room, connect, model):
    model.queue(Reply("Hello from the model, streamed in pieces.", tokens_per_second=100))
    tab1 = await connect(f"/ws/chat/{room.pk}/")
    tab2 = await connect(f"/ws/chat/{room.pk}/")

    await tab1.send_to(text_data=send("Hi there"))
    frames1 = await receive_until(tab1, reply_finished)
    frames2 = await receive_until(tab2, reply_finished)

    for frames in (frames1, frames2):
        shown = [m for f in frames for m in messages_in(f)]
        assert shown[0].role == "user" and shown[0].text == "Hi there"
        replies = [m for m in shown if m.role == "assistant"]
        assert len(replies) >= 3, "the reply should arrive in several updates"
        assert replies[-1].status == "complete"
        assert replies[-1].text == "Hello from the model, streamed in pieces."
    assert await rows(room) == [
        ("user", "complete", "Hi there"),
        ("assistant", "complete", "Hello from the model, streamed in pieces."),
    ]
    # The sender gets an answer; the other tab does not.
    assert any('id="composer-answer"' in f for f in frames1)
    assert not any('id="composer-answer"' in f for f in frames2)


async def test_model_receives_system_prompt_and_history(room, connect, model):
    tab = await connect(f"/ws/chat/{room.pk}/")
    model.queue(Reply("First answer."), Reply("Second answer."))
    await tab.send_to(text_data=send("First question"))
    await receive_until(tab, reply_finished)
    await tab.send_to(text_data=send("Second question"))
    await receive_until(tab, reply_finished)

    second = model.wait_for_requests(2)[1]
    assert second["stream"] is True
    assert second["model"] == "test-model"
    assert second["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Second question"},
    ]


async def test_reply_goes_on_when_the_sender_closes_its_tab(room, connect, model):
    text = " ".join(f"word{i}" for i in range(40))
    model.queue(Reply(text, tokens_per_second=80))
    sender = await connect(f"/ws/chat/{room.pk}/")
    watcher = await connect(f"/ws/chat/{room.pk}/")
    await sender.send_to(text_data=send("Tell me a lot"))
    # Close the sender as soon as the reply has started streaming.
    await receive_until(
        sender, lambda f: any(m.role == "assistant" and m.text for m in messages_in(f))
    )
    await sender.disconnect()

    frames = await receive_until(watcher, reply_finished)
    assert messages_in(frames[-1])[-1].text == text
    assert (await rows(room))[-1] == ("assistant", "complete", text)


async def test_nothing_is_lost_at_200_tokens_per_second(room, connect, model):
    """Every update reaches every tab: each delta follows what the page shows (a slow
    tab's waiting deltas are merged into one, so seqs may skip but never break the
    chain), and the reply ends in the full text without the page asking for it."""
    chunks = tuple(f"t{i} " for i in range(400))
    model.queue(Reply(chunks=chunks, tokens_per_second=200))
    tabs = [await connect(f"/ws/chat/{room.pk}/") for _ in range(5)]
    await tabs[0].send_to(text_data=send("Stream fast"))

    for tab in tabs:
        frames = await receive_until(tab, reply_finished, within=20)
        seqs = [m.seq for f in frames for m in messages_in(f) if m.role == "assistant"]
        assert seqs[0] == 0 and len(seqs) > 10
        assert seqs == sorted(set(seqs)), "an update came out of order"
        assert page_of(tab).asks == [], "a delta did not follow what the page showed"
        assert messages_in(frames[-1])[-1].text == "".join(chunks).strip()


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (send(""), "This field is required."),
        (send("   \n\t "), "This field is required."),
        (send("x" * 8001), "Ensure this value has at most 8000 characters (it has 8001)."),
        ("this is not json", "That frame was not a JSON object"),
        ('["a", "list"]', "That frame was not a JSON object"),
        (json.dumps({"HEADERS": {}}), "That frame had no message content"),
        (json.dumps({"action": "dance"}), "Unknown action."),
        (json.dumps({"action": "sync", "since": "x"}), "the sync frame was malformed"),
        ("x" * 70_000, "That frame was too large"),
    ],
)
async def test_bad_input_gets_an_error_for_that_sender_only(room, connect, model, frame, error):
    sender = await connect(f"/ws/chat/{room.pk}/")
    other = await connect(f"/ws/chat/{room.pk}/")
    await sender.send_to(text_data=frame)
    answer = await sender.receive_from()
    assert 'id="composer-answer"' in answer and 'hx-swap-oob="true"' in answer
    assert error in answer
    assert await other.receive_nothing(timeout=0.2)
    assert await rows(room) == []
    # The connection stays usable.
    await sender.send_to(text_data=send("Still here"))
    frames = await receive_until(sender, reply_finished)
    assert any(m.text == "Still here" for f in frames for m in messages_in(f))


async def test_a_message_while_the_room_is_replying_waits_its_turn(room, connect, model):
    model.queue(Reply("slow " * 30, tokens_per_second=60), Reply("Second answer."))
    tab1 = await connect(f"/ws/chat/{room.pk}/")
    tab2 = await connect(f"/ws/chat/{room.pk}/")
    await tab1.send_to(text_data=send("first"))
    await receive_until(tab2, lambda f: any(m.role == "assistant" for m in messages_in(f)))

    await tab2.send_to(text_data=send("second"))
    queued = await receive_until(tab2, lambda f: 'id="queue"' in f and "second" in f)
    assert "Queued · 1" in queued[-1]
    await receive_until(
        tab1,
        lambda f: any(
            m.text == "Second answer." and m.status == "complete" for m in messages_in(f)
        ),
    )
    await replies_finished()
    assert [r[2] for r in await rows(room)] == ["first", "slow " * 30, "second", "Second answer."]


async def test_catch_up_sends_what_changed_since_the_pages_version(room, connect, message_factory):
    old = await sync_to_async(message_factory)(room, "seen already")
    missed = await sync_to_async(message_factory)(room, "missed while offline")
    for message in (old, missed):
        await sync_to_async(broadcast.room_version_bump)(room_id=room.pk, message_ids=[message.pk])
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"action": "sync", "since": 1}))
    frame = await tab.receive_from()
    assert [(m.pk, m.text) for m in messages_in(frame)] == [(missed.pk, "missed while offline")]
    assert room_version_in(frame) == 2
    # Nothing new: only the version.
    await tab.send_to(text_data=json.dumps({"action": "sync", "since": 2}))
    frame = await tab.receive_from()
    assert messages_in(frame) == [] and room_version_in(frame) == 2


def sync_one(message_id: int, seq: int) -> str:
    return json.dumps({"action": "sync", "message": message_id, "seq": seq})


async def test_a_dropped_final_update_is_repaired_by_asking_for_that_message(
    room, connect, model, monkeypatch
):
    """The layer delivers at most once: here the reply's final broadcast is dropped on
    purpose, and the tab, seeing its streaming message fall silent, asks for it."""
    real_send = reply_stream.room_send

    async def drop_the_final_update(*, room_id, html, key=None):
        if 'data-status="streaming"' in html["en"]:
            await real_send(room_id=room_id, html=html, key=key)

    monkeypatch.setattr(reply_stream, "room_send", drop_the_final_update)
    model.queue(Reply("The end never arrives live.", tokens_per_second=100))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("hi"))
    await replies_finished()
    frames = []
    while not await tab.receive_nothing(timeout=0.3):
        frames.append(await tab.receive_from())
    held = [m for f in frames for m in messages_in(f) if m.role == "assistant"][-1]
    assert held.status == "streaming", "the tab never heard the reply end"

    await tab.send_to(text_data=sync_one(held.pk, held.seq))
    (final,) = messages_in(await tab.receive_from())
    assert (final.pk, final.status) == (held.pk, "complete")
    assert final.text == "The end never arrives live." and final.seq > held.seq
    # Holding the newest version already, the tab is sent nothing.
    await tab.send_to(text_data=sync_one(final.pk, final.seq))
    assert await tab.receive_nothing(timeout=0.3)


async def test_asking_for_another_rooms_message_sends_nothing(
    room, room_factory, connect, message_factory
):
    elsewhere = await sync_to_async(message_factory)(await sync_to_async(room_factory)("Other"))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=sync_one(elsewhere.pk, 0))
    assert await tab.receive_nothing(timeout=0.3)


async def test_a_flood_of_sync_requests_is_throttled_per_socket(
    room, connect, message_factory, settings
):
    settings.CHAT_SYNC_BURST, settings.CHAT_SYNC_RATE = 3, 0.5
    await sync_to_async(message_factory)(room, "already there")
    flooder = await connect(f"/ws/chat/{room.pk}/")
    calm = await connect(f"/ws/chat/{room.pk}/")
    dropped_before = REGISTRY.get_sample_value("chat_syncs_dropped_total") or 0
    for _ in range(30):
        await flooder.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
    answered = 0
    while not await flooder.receive_nothing(timeout=0.3):
        await flooder.receive_from()
        answered += 1
    assert answered == 3, "a burst is answered, the rest dropped"
    dropped = REGISTRY.get_sample_value("chat_syncs_dropped_total") - dropped_before
    assert dropped >= 26, dropped  # 27, unless the bucket refilled one meanwhile
    # Another socket's allowance is its own.
    await calm.send_to(text_data=json.dumps({"action": "sync", "since": 0}))
    assert [m.text for m in messages_in(await calm.receive_from())] == ["already there"]


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "sync"},
        {"action": "sync", "message": 1},
        {"action": "sync", "message": "x", "seq": 1},
        {"action": "sync", "message": 1, "seq": -1},
    ],
)
async def test_malformed_sync_requests_get_a_notice(room, connect, frame):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps(frame))
    assert "the sync frame was malformed" in await tab.receive_from()


async def refused_with(path: str, headers: list[tuple[bytes, bytes]]) -> int:
    """Open a socket that must be refused; returns the close code.

    A refusal is accepted, then closed at once, with nothing of the room sent:
    closed before accept, the browser would see only 1006, and retry forever."""
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected, "accepted, so the page can tell why it is closed"
    close = await communicator.receive_output()
    assert close["type"] == "websocket.close", close
    return close["code"]


async def test_unknown_room_is_refused_with_a_clear_code(user):
    cookie = await sync_to_async(session_cookie)(user)
    assert await refused_with("/ws/chat/999/", [ORIGIN, cookie]) == 4404


async def test_anonymous_sockets_are_closed_as_signed_out(room):
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN]) == 4401


async def test_a_socket_of_a_logged_out_session_is_closed_as_signed_out(room, user):
    cookie = await sync_to_async(session_cookie)(user)
    # Logging out deletes the session the cookie names.
    await Session.objects.all().adelete()
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4401


async def test_a_non_member_is_refused_like_an_unknown_room(room, user_factory):
    mallory = await sync_to_async(user_factory)("mallory")
    cookie = await sync_to_async(session_cookie)(mallory)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4404


async def test_members_see_the_room_live(room, connect, model, user_factory):
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    model.queue(Reply("A reply both of you see.", tokens_per_second=50))
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=send("Bob asks"))
    for tab in (alice_tab, bob_tab):
        frames = await receive_until(tab, reply_finished)
        shown = [m for f in frames for m in messages_in(f)]
        assert '<span class="message__author">bob</span>' in shown[0].html
        assert shown[-1].text == "A reply both of you see."


async def test_a_removed_member_is_disconnected_at_once(room, connect, user_factory):
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)

    await sync_to_async(services.room_member_remove)(room=room, user_id=bob.pk)

    assert await bob_tab.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
    assert await alice_tab.receive_nothing(timeout=0.3)
    cookie = await sync_to_async(session_cookie)(bob)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4404


async def test_connections_per_user_are_bounded(room, connect, user, settings):
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    await connect(f"/ws/chat/{room.pk}/")
    second = await connect(f"/ws/chat/{room.pk}/")
    cookie = await sync_to_async(session_cookie)(user)
    assert await refused_with(f"/ws/chat/{room.pk}/", [ORIGIN, cookie]) == 4429
    await second.disconnect()
    assert await connect(f"/ws/chat/{room.pk}/"), "a closed socket frees its place"


async def test_a_double_send_is_one_message_and_both_are_answered(room, connect, model):
    model.queue(Reply("Once."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("Hello", client_id=CLIENT_ID))
    await tab.send_to(text_data=send("Hello", client_id=CLIENT_ID))
    frames = await receive_until(tab, reply_finished)
    sent = f'data-for="{CLIENT_ID}" data-outcome="sent"'
    while sum(sent in f for f in frames) < 2:  # each send is answered, so the page unlocks
        frames.append(await tab.receive_from())
    answers = [f for f in frames if sent in f]
    assert not any("<form" in f for f in answers), "the answer is not a new composer"
    assert await rows(room) == [("user", "complete", "Hello"), ("assistant", "complete", "Once.")]


async def test_a_malformed_client_id_is_refused(room, connect):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("Hello", client_id="not-a-uuid"))
    answer = await tab.receive_from()
    assert 'data-outcome="refused"' in answer and "malformed id" in answer
    assert await rows(room) == []


async def test_sending_too_fast_gets_a_notice(room, connect, model, settings):
    settings.CHAT_RATE_LIMIT = 1
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("one"))
    await receive_until(tab, reply_finished)
    await tab.send_to(text_data=send("two", client_id=CLIENT_ID))
    notice = await receive_until(tab, lambda f: 'id="composer-answer"' in f and "too fast" in f)
    assert "You are sending messages too fast. Try again in" in notice[-1]
    # The page puts the refused text back: the answer names the send it refuses.
    assert f'data-for="{CLIENT_ID}" data-outcome="refused"' in notice[-1]
    assert [r[2] for r in await rows(room) if r[0] == "user"] == ["one"]


async def test_cross_site_handshake_is_refused(room):
    communicator = WebsocketCommunicator(
        application, f"/ws/chat/{room.pk}/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_model_error_leaves_a_visible_error_and_keeps_partial_text(room, connect, model):
    model.queue(Reply("partial words then", cut_after=2))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("Go"))
    frames = await receive_until(tab, reply_finished)
    final = messages_in(frames[-1])[-1]
    assert final.status == "error"
    assert "cut off" in final.html
    reply = await Message.objects.filter(room=room, role="assistant").aget()
    assert (reply.status, reply.content) == ("error", "partial words ")
    # The room keeps working: the next message gets a reply.
    model.queue(Reply("Recovered."))
    await tab.send_to(text_data=send("Again"))
    frames = await receive_until(tab, reply_finished)
    assert messages_in(frames[-1])[-1].text == "Recovered."


async def test_a_bang_question_is_answered_from_the_documents(
    room, connect, model, taxlaw_document_factory
):
    document = await sync_to_async(taxlaw_document_factory)(
        요지="퇴직금의 선급에 해당하는 것임", url="https://taxlaw.example/7"
    )
    model.queue(Reply("퇴직금의 선급입니다 (소득46011-364)."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("!급여에 포함하여 지급되는 퇴직금의 소득 구분은?"))
    frames = await receive_until(tab, reply_finished)

    sent = (await asyncio.to_thread(model.wait_for_requests, 1))[0]["messages"]
    assert sent[0]["role"] == "system"
    assert sent[0]["content"].startswith("You are terse.")
    assert "퇴직금의 선급에 해당하는 것임" in sent[0]["content"]
    question = "급여에 포함하여 지급되는 퇴직금의 소득 구분은?"
    assert sent[1:] == [{"role": "user", "content": question}]
    final = messages_in(frames[-1])[-1]
    assert 'class="message__sources"' in final.html
    assert '<a href="https://taxlaw.example/7"' in final.html and "소득46011-364" in final.html
    reply = await Message.objects.aget(room=room, role="assistant")
    assert reply.sources == [document.source]


async def test_without_a_model_a_bang_question_still_shows_keyword_sources(
    room, connect, model, settings, taxlaw_document_factory
):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    document = await sync_to_async(taxlaw_document_factory)()
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("!퇴직금의 소득 구분은?"))
    frames = await receive_until(tab, reply_finished)
    final = messages_in(frames[-1])[-1]
    assert "Offline demo model" in final.text and "“퇴직금의 소득 구분은?”" in final.text
    assert document.number in final.html
    assert (await Message.objects.aget(room=room, role="assistant")).sources == [document.source]
    assert model.embedding_requests == []


async def test_a_member_who_leaves_has_their_tabs_closed_and_their_questions_cancelled(
    room, connect, user_factory, model
):
    model.queue(Reply("slow " * 40, tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("first"))
    await receive_until(bob_tab, lambda f: any(m.role == "assistant" for m in messages_in(f)))
    await bob_tab.send_to(text_data=send("bob's question"))
    await receive_until(alice_tab, lambda f: 'id="queue"' in f and "bob&#x27;s question" in f)

    await sync_to_async(services.room_leave)(room=room, user=bob)
    while (output := await bob_tab.receive_output(timeout=5))["type"] != "websocket.close":
        pass
    assert output["code"] == 4404
    emptied = await receive_until(alice_tab, lambda f: 'id="queue"' in f and "bob" not in f)
    assert "Queued" not in emptied[-1]
    # Alice's reply goes on.
    await receive_until(alice_tab, reply_finished)
    assert not await Message.objects.filter(room=room, status="queued").aexists()


async def test_deleting_a_room_stops_its_reply_and_closes_every_tab(
    room, connect, user_factory, model
):
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("go on"))
    # Its first words: the model is streaming.
    await receive_until(
        bob_tab, lambda f: any(m.text for m in messages_in(f) if m.role == "assistant")
    )
    room_id = room.pk

    await sync_to_async(services.room_delete)(room=room)
    for tab in (alice_tab, bob_tab):
        while (output := await tab.receive_output(timeout=5))["type"] != "websocket.close":
            pass
        assert output["code"] == 4404
    await replies_finished(within=5)
    assert len(model.requests) == 1
    assert not await Message.objects.filter(room_id=room_id).aexists()
    cookie = await sync_to_async(session_cookie)(bob)
    assert await refused_with(f"/ws/chat/{room_id}/", [ORIGIN, cookie]) == 4404


async def test_leaving_stops_the_reply_to_the_leavers_question(room, connect, user_factory, model):
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(400)), tokens_per_second=40))
    bob = await sync_to_async(user_factory)("bob")
    await room.members.aadd(bob)
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await bob_tab.send_to(text_data=send("bob asks"))
    # Under way (its Stop listener is up once text flows).
    await receive_until(
        alice_tab, lambda f: any(m.role == "assistant" and m.text for m in messages_in(f))
    )

    await sync_to_async(services.room_leave)(room=room, user=bob)
    final = await receive_until(alice_tab, reply_finished)
    assert [m.status for m in messages_in(final[-1]) if m.role == "assistant"] == ["stopped"]
