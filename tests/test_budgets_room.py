"""Token budgets in a room (in process, over the room websocket, real Redis and model
server): a spent budget saves the question, tells the asker and shows the room; a
queued question whose asker ran out is skipped and the queue moves on; and
regenerate, continue and edit are refused once the asker's budget is spent."""

from datetime import datetime

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from prometheus_client import REGISTRY

from chat import budgets
from chat.budget_models import Charge, UserBudget
from chat.models import Message
from chat.turns import actions, refusals
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, send, text_of

CEILING = 100
# Under the ceiling: the tests' model server cuts a reply at max_tokens chunks.
SLOW = Reply(chunks=tuple(f"s{i} " for i in range(90)), tokens_per_second=40)


def renewal(budget: str, now: datetime) -> str:
    return budgets.renews_at(budget=budget, now=now).strftime("%Y-%m-%d %H:%M UTC")


@pytest.fixture
def room(room_factory, bob):
    room = room_factory(name="Shared")
    room.members.add(bob)
    return room


@sync_to_async
def rows(room) -> list[tuple[str, str, str, str | None]]:
    messages = room.messages.order_by("pk")
    return list(messages.values_list("role", "status", "content", "skipped_for"))


def refusals_of(budget: str) -> float:
    return REGISTRY.get_sample_value("chat_budget_refusals_total", {"budget": budget}) or 0


def notice(frame: str) -> bool:
    return 'id="budget-notice"' in frame


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_spent_budget_saves_the_question_tells_the_asker_and_shows_the_room(
    settings, room, bob, connect, model
):
    settings.CHAT_MAX_REPLY_TOKENS = CEILING
    # Less than any reply's reservation.
    settings.CHAT_USER_TOKENS_PER_DAY = 50
    before = refusals_of("day")
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("Anyone there?"))

    told = text_of((await receive_until(alice_tab, notice))[-1])
    assert "your daily token budget has 50 tokens left" in told
    assert f"It renews at {renewal('day', timezone.now())}." in told
    # Every tab shows the question, with the note; only the asker's tabs say why.
    frames = await receive_until(bob_tab, lambda f: bool(messages_in(f)))
    (shown,) = messages_in(frames[-1])
    assert "Anyone there?" in shown.text
    assert "The AI did not answer: the asker&#x27;s daily token budget ran out." in shown.html
    assert not any(notice(frame) for frame in frames)

    assert await rows(room) == [("user", "complete", "Anyone there?", "day")]
    assert model.requests == []
    assert not await Charge.objects.aexists()
    assert refusals_of("day") == before + 1
    # On page load too.
    page = await sync_to_async(_room_page)(room, bob)
    assert "the asker&#x27;s daily token budget ran out" in page


def _room_page(room, user) -> str:
    from django.test import Client

    browser = Client()
    browser.force_login(user)
    return browser.get(room.get_absolute_url()).content.decode()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_queued_question_whose_asker_ran_out_is_skipped_and_the_queue_moves_on(
    settings, room, bob, connect, model
):
    settings.CHAT_MAX_REPLY_TOKENS = CEILING
    await UserBudget.objects.acreate(user=bob, tokens_per_day=50)
    model.queue(SLOW, Reply("Answered."))
    alice_tab = await connect(f"/ws/chat/{room.pk}/")
    bob_tab = await connect(f"/ws/chat/{room.pk}/", as_user=bob)
    await alice_tab.send_to(text_data=send("first"))
    await receive_until(alice_tab, lambda f: any(m.status == "streaming" for m in messages_in(f)))
    await bob_tab.send_to(text_data=send("from bob"))
    await receive_until(alice_tab, lambda f: 'id="queue"' in f and "from bob" in f)
    await alice_tab.send_to(text_data=send("alice again"))

    told = text_of((await receive_until(bob_tab, notice, within=20))[-1])
    assert "your daily token budget has 50 tokens left" in told
    for _ in range(5):
        await replies_finished(within=20)
    assert await rows(room) == [
        ("user", "complete", "first", None),
        ("assistant", "complete", "".join(SLOW.chunks), None),
        ("user", "complete", "from bob", "day"),
        ("user", "complete", "alice again", None),
        ("assistant", "complete", "Answered.", None),
    ]
    charged = Charge.objects.order_by("pk").values_list("user__username", "settled")
    assert [row async for row in charged] == [("alice", True), ("alice", True)]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_regenerate_continue_and_edit_are_refused_when_the_asker_s_budget_is_spent(
    settings, room, bob, model
):
    settings.CHAT_MAX_REPLY_TOKENS = CEILING
    model.queue(Reply(chunks=tuple(f"w{i} " for i in range(60))))
    alice = room.owner
    await actions.message_send(room_id=room.pk, author=alice, content="Write sixty words")
    await replies_finished()
    spent = await Charge.objects.aget()
    # Room for the reply she had, not for another one.
    await UserBudget.objects.filter(user=alice).aupdate(tokens_per_day=spent.tokens + CEILING)
    reply = await Message.objects.aget(role="assistant")

    with pytest.raises(refusals.BudgetSpent) as refused:
        await actions.reply_regenerate(room_id=room.pk, user=alice)
    assert "your daily token budget has" in refused.value.text()
    # Charged to whoever asked, so the asker's budget is what others are told of.
    with pytest.raises(refusals.BudgetSpent) as refused:
        await actions.reply_regenerate(room_id=room.pk, user=bob)
    assert "the asker's daily token budget has" in refused.value.text()
    question = await Message.objects.aget(role="user")
    with pytest.raises(refusals.BudgetSpent):
        await actions.message_edit(
            room_id=room.pk, author=alice, message_id=question.pk, content="Shorter"
        )
    await Message.objects.filter(pk=reply.pk).aupdate(status="stopped")
    with pytest.raises(refusals.BudgetSpent):
        await actions.reply_continue(room_id=room.pk, user=alice, message_id=reply.pk)

    # Nothing changed.
    assert await rows(room) == [
        ("user", "complete", "Write sixty words", None),
        ("assistant", "stopped", reply.content, None),
    ]
    assert await Charge.objects.acount() == 1
