"""Reply controls and faults over the room websocket: Stop, Regenerate, Retry, resume."""

import itertools

import pytest
from asgiref.sync import sync_to_async

from chat.models import Message
from chat.turns import supervisor
from tests.fakeopenai import Reply
from tests.servers import free_port
from tests.wsutil import action, messages_in, receive_until, reply_finished, send

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@sync_to_async
def rows(room) -> list[tuple[str, str, str]]:
    return list(room.messages.values_list("role", "status", "content"))


def assistant(frames: list[str]):
    return [m for f in frames for m in messages_in(f) if m.role == "assistant"]


def showing(characters: int):
    """Done once a reply update shows more than this much text."""
    return lambda frame: any(len(m.text) > characters for m in assistant([frame]))


@pytest.fixture
def room(room_factory):
    return room_factory(name="Room")


async def test_stop_keeps_the_partial_text_for_every_tab(room, connect, model):
    model.queue(Reply(chunks=tuple(f"s{i} " for i in range(200)), tokens_per_second=50))
    tab1 = await connect(f"/ws/chat/{room.pk}/")
    tab2 = await connect(f"/ws/chat/{room.pk}/")
    await tab1.send_to(text_data=send("go"))
    frames = await receive_until(
        tab2, lambda f: len(assistant([f]) and assistant([f])[-1].text) > 20
    )
    reply = assistant(frames)[-1]
    assert 'name="action" value="stop"' in frames[-1], "every tab shows Stop while streaming"

    await tab2.send_to(text_data=action("stop", message=str(reply.pk)))
    for tab in (tab1, tab2):
        final = assistant(await receive_until(tab, reply_finished))[-1]
        assert final.status == "stopped"
        assert "Stopped." in final.html and "Regenerate" in final.html
    assert await rows(room) == [
        ("user", "complete", "go"),
        ("assistant", "stopped", final.text + " "),
    ]


async def test_regenerate_answers_the_last_message_again_in_place(room, connect, model):
    model.queue(Reply("First try."), Reply("Second try."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    first = assistant(await receive_until(tab, reply_finished))[-1]

    await tab.send_to(text_data=action("regenerate"))
    again = assistant(await receive_until(tab, reply_finished))
    assert {m.pk for m in again} == {first.pk}, "the same message is replaced"
    assert again[0].seq > first.seq
    assert again[-1].text == "Second try."
    assert await rows(room) == [
        ("user", "complete", "question"),
        ("assistant", "complete", "Second try."),
    ]
    first_request, second_request = model.wait_for_requests(2)
    assert first_request["messages"] == second_request["messages"]


async def test_retry_after_an_error(room, connect, model):
    model.queue(Reply("overloaded", status=500), Reply("Worked this time."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    failed = assistant(await receive_until(tab, reply_finished))[-1]
    assert failed.status == "error" and ">Retry<" in failed.html

    await tab.send_to(text_data=action("regenerate"))
    final = assistant(await receive_until(tab, reply_finished))[-1]
    assert (final.status, final.text) == ("complete", "Worked this time.")
    assert "message__error" not in final.html


@pytest.mark.parametrize(
    ("frame", "error"),
    [
        (action("regenerate"), "There is no reply to regenerate."),
        (action("stop", message="12345"), "That reply is not being written any more."),
        (action("stop", message="not a number"), "That reply is not being written any more."),
        (action("stop"), "That reply is not being written any more."),
    ],
)
async def test_controls_with_nothing_to_act_on_are_refused(room, connect, frame, error):
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=frame)
    answer = await tab.receive_from()
    assert 'id="composer-answer"' in answer and error in answer
    assert await rows(room) == []


async def test_regenerate_while_replying_is_refused(room, connect, model):
    model.queue(Reply("slow " * 20, tokens_per_second=40))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    await receive_until(tab, lambda f: bool(assistant([f])))
    await tab.send_to(text_data=action("regenerate"))
    refusal = await receive_until(tab, lambda f: 'id="composer-answer"' in f and "Wait" in f)
    assert "Wait for the current reply to finish, then try again." in refusal[-1]
    await receive_until(tab, reply_finished)
    assert [r[1] for r in await rows(room)] == ["complete", "complete"]


@pytest.mark.parametrize(
    ("fault", "message", "partial"),
    [
        (Reply("x", status=429), "rate-limited", ""),
        (Reply("x", status=500), "(HTTP 500)", ""),
        (Reply("never", first_token_delay=3), "did not answer in time", ""),
        (Reply("kept words then cut", cut_after=2), "cut off", "kept words "),
        (None, "Could not reach the model server", ""),
    ],
    ids=["429", "500", "timeout", "cut", "refused"],
)
async def test_model_faults_show_an_error_and_the_room_goes_on(
    room, connect, model, settings, fault, message, partial
):
    settings.OPENAI_TIMEOUT = 0.5
    if fault is None:
        settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    else:
        model.queue(fault)
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    final = assistant(await receive_until(tab, reply_finished))[-1]
    assert final.status == "error" and message in final.html
    assert await rows(room) == [("user", "complete", "question"), ("assistant", "error", partial)]

    settings.OPENAI_BASE_URL = model.base_url
    model.queue(Reply("Fine again."))
    await tab.send_to(text_data=action("regenerate"))
    final = assistant(await receive_until(tab, reply_finished))[-1]
    assert (final.status, final.text) == ("complete", "Fine again.")


async def test_a_tab_opening_mid_reply_resumes_without_gaps_or_duplicates(room, connect, model):
    words = tuple(f"r{i} " for i in range(80))
    model.queue(Reply(chunks=words, tokens_per_second=80))
    sender = await connect(f"/ws/chat/{room.pk}/")
    await sender.send_to(text_data=send("go"))
    await receive_until(sender, showing(40))

    late = await connect(f"/ws/chat/{room.pk}/")
    # It loaded the page before the reply began.
    await late.send_to(text_data=action("sync", since=0))
    updates = assistant(await receive_until(late, reply_finished))
    texts = [u.text for u in updates]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))
    assert updates[-1].text == "".join(words).strip()


async def test_continue_carries_a_stopped_reply_on_in_the_same_message(room, connect, model):
    model.queue(Reply(chunks=tuple(f"c{i} " for i in range(200)), tokens_per_second=50))
    tab1 = await connect(f"/ws/chat/{room.pk}/")
    tab2 = await connect(f"/ws/chat/{room.pk}/")
    await tab1.send_to(text_data=send("go"))
    reply = assistant(await receive_until(tab1, showing(20)))[-1]
    await tab1.send_to(text_data=action("stop", message=reply.pk))
    stopped = assistant(await receive_until(tab2, reply_finished))[-1]
    assert 'value="continue"' in stopped.html
    kept = (await Message.objects.aget(pk=reply.pk)).content

    model.queue(Reply("and the rest."))
    await tab2.send_to(text_data=action("continue", message=str(reply.pk)))
    for tab in (tab1, tab2):
        updates = assistant(
            await receive_until(tab, lambda f: "the rest" in f and reply_finished(f))
        )
        assert {u.pk for u in updates} == {reply.pk}
        assert updates[-1].status == "complete"
        assert updates[-1].seq > stopped.seq
    assert await rows(room) == [
        ("user", "complete", "go"),
        ("assistant", "complete", kept + "and the rest."),
    ]
    # The model saw the conversation, the text kept, and was asked to carry on.
    request = model.wait_for_requests(2)[-1]
    assert request["messages"][-2:] == [
        {"role": "assistant", "content": kept},
        {"role": "user", "content": supervisor.CONTINUE_PROMPT},
    ]
    assert request["messages"][0] == {"role": "user", "content": "go"}


async def test_continue_an_interrupted_reply(room, connect, model, message_factory):
    await sync_to_async(message_factory)(room, "question")
    reply = await sync_to_async(message_factory)(
        room, "Half of", role="assistant", status="interrupted", seq=7
    )
    model.queue(Reply(" it, then all."))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=action("continue", message=reply.pk))
    final = assistant(await receive_until(tab, reply_finished))[-1]
    assert (final.pk, final.status, final.text) == (reply.pk, "complete", "Half of it, then all.")
    assert "message__error" not in final.html


@pytest.mark.parametrize(
    "case", ["complete", "not last", "unknown", "malformed", "missing", "other room"]
)
async def test_continue_refuses_what_cannot_be_continued(
    room, room_factory, connect, message_factory, case
):
    other_room = await sync_to_async(room_factory)(name="Other")
    await sync_to_async(message_factory)(room, "question")
    status = "complete" if case == "complete" else "interrupted"
    reply = await sync_to_async(message_factory)(room, "An answer", role="assistant", status=status)
    elsewhere = await sync_to_async(message_factory)(
        other_room, "Elsewhere", role="assistant", status="stopped"
    )
    if case == "not last":
        await sync_to_async(message_factory)(room, "a later question")
    target = {"unknown": 99999, "malformed": "x1", "missing": None, "other room": elsewhere.pk}
    snapshot = sync_to_async(lambda: list(Message.objects.values_list()))
    before = await snapshot()
    tab = await connect(f"/ws/chat/{room.pk}/")
    other_tab = await connect(f"/ws/chat/{other_room.pk}/")

    await tab.send_to(text_data=action("continue", message=target.get(case, reply.pk)))
    answer = await tab.receive_from()
    assert 'id="composer-answer"' in answer
    assert "Only the room&#x27;s last reply can be continued" in answer
    assert await other_tab.receive_nothing(timeout=0.3), "the notice is for that socket only"
    assert await snapshot() == before, "nothing changes"


async def test_stop_for_another_rooms_reply_is_refused_and_changes_nothing(
    room, room_factory, connect, model
):
    other_room = await sync_to_async(room_factory)(name="Other")
    model.queue(Reply("slow " * 40, tokens_per_second=40), Reply("x"))
    other_tab = await connect(f"/ws/chat/{other_room.pk}/")
    await other_tab.send_to(text_data=send("question"))
    reply = assistant(await receive_until(other_tab, lambda f: bool(assistant([f]))))[-1]

    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=action("stop", message=reply.pk))
    answer = await tab.receive_from()
    assert "That reply is not being written any more." in answer
    final = assistant(await receive_until(other_tab, reply_finished))[-1]
    assert (final.pk, final.status) == (reply.pk, "complete")


async def test_one_huge_chunk_in_one_room_does_not_stall_another(room_factory, connect, model):
    # About 100 KB of Markdown arriving as one chunk: 400 finished blocks in one update.
    huge = "\n\n".join(f"Paragraph {i}: " + "many words here " * 15 for i in range(400))
    assert len(huge) > 100_000
    words = tuple(f"w{i} " for i in range(40))
    model.queue(Reply(chunks=words, tokens_per_second=20), Reply(chunks=(huge,)))
    steady = await sync_to_async(room_factory)(name="Steady")
    flooded = await sync_to_async(room_factory)(name="Flooded")
    steady_tab = await connect(f"/ws/chat/{steady.pk}/")
    flooded_tab = await connect(f"/ws/chat/{flooded.pk}/")

    await steady_tab.send_to(text_data=send("a few words"))
    await receive_until(steady_tab, showing(10))
    await flooded_tab.send_to(text_data=send("everything at once"))
    # The steady reply keeps streaming in updates of its own while the huge one is
    # rendered and sent, and both end whole.
    after = await receive_until(steady_tab, reply_finished, within=20)
    assert len(assistant(after)) >= 5, "the steady reply went on in several updates"
    assert assistant(after)[-1].text == "".join(words).strip()
    flooded_frames = await receive_until(flooded_tab, reply_finished, within=20)
    shown = assistant(flooded_frames)[-1]
    assert shown.status == "complete"
    assert shown.text.startswith("Paragraph 0: many words") and "Paragraph 399:" in shown.text
    assert await rows(flooded) == [
        ("user", "complete", "everything at once"),
        ("assistant", "complete", huge),
    ]
