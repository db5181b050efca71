"""The room websocket, through the full ASGI stack, on the real channels-redis layer: a
message and its reply streamed to every tab, what the model is sent, bad input and
refused sends, questions waiting their turn, a reply cut off, and questions answered
from the documents. Who may hold the socket is tests/test_consumers_access.py; catching
up, tests/test_consumers_sync.py."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, page_of, receive_until, reply_finished, send

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
