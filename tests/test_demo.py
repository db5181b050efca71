"""The offline demo model: what a newcomer meets first must read like a model's reply."""

import json

import pytest
from asgiref.sync import sync_to_async

from chat import demo
from tests.wsutil import messages_in, receive_until, reply_finished


def answer(question: str) -> str:
    return demo.demo_text([{"role": "user", "content": question}])


def test_the_reply_quotes_the_question():
    text = answer("안녕하세요")
    assert text.startswith("**Offline demo model.**")
    assert "You wrote 5 characters: “안녕하세요”" in text


def test_a_shared_room_s_author_line_is_not_quoted():
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": '[author: "alice \\"a\\""]\nHello there'},
    ]
    text = demo.demo_text(turns)
    assert "[author" not in text and "alice" not in text
    assert "“Hello there”" in text


CONTINUE = "Your reply above was cut off. Continue it exactly where it stopped."


@pytest.mark.parametrize("cut", [5, 12, 30])
def test_continue_writes_the_rest_of_a_cut_off_reply(cut):
    full = answer("question")
    kept = "".join(demo._WORD.findall(full)[:cut])
    turns = [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": kept},
        {"role": "user", "content": CONTINUE},
    ]
    rest = demo.demo_text(turns)
    assert kept + rest == full
    assert rest[0].isspace(), "carries on after a space, as a model would"
    assert "cut off" not in rest


def test_continue_past_the_end_adds_a_sentence_after_a_space():
    turns = [
        {"role": "user", "content": "question"},
        {"role": "assistant", "content": "A reply from a model no longer configured."},
        {"role": "user", "content": CONTINUE},
    ]
    rest = demo.demo_text(turns)
    assert rest == " That is all the offline demo model has to say."


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_continue_in_a_room_carries_the_demo_reply_on(
    room_factory, message_factory, connect, settings
):
    """Through the real Continue path, with the server's own instruction."""
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    room = await sync_to_async(room_factory)(name="Demo")
    await sync_to_async(message_factory)(room, "퇴직금은?")
    full = answer("퇴직금은?")
    kept = "".join(demo._WORD.findall(full)[:6])
    reply = await sync_to_async(message_factory)(
        room, kept, role="assistant", status="stopped", seq=3
    )
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"action": "continue", "message": reply.pk}))
    frames = await receive_until(tab, reply_finished, within=20)
    assert [m.status for f in frames for m in messages_in(f)][-1] == "complete"
    await reply.arefresh_from_db()
    assert reply.content == full
    assert "cut off" not in reply.content
