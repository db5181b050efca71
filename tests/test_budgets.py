"""Token budgets: the arithmetic, the reservation and its settling, and what the room
shows when one runs out (in process, over the room websocket, real Redis and model server)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone, translation
from prometheus_client import REGISTRY

from chat import budgets, selectors
from chat.budget_models import Charge, UserBudget, day_start
from chat.models import Message
from chat.tokens import tokens_estimate, tokens_estimate_messages
from chat.turns import actions, claims, refusals
from tests.conftest import replies_finished
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, send, text_of

CEILING = 100
# Under the ceiling: the tests' model server cuts a reply at max_tokens chunks.
SLOW = Reply(chunks=tuple(f"s{i} " for i in range(90)), tokens_per_second=40)


def charge(user, room, tokens: int, at: datetime | None = None) -> Charge:
    return Charge.objects.create(
        reply_id=0,
        user=user,
        room=room,
        prompt_tokens=tokens,
        completion_tokens=0,
        tokens=tokens,
        settled=True,
        at=at or timezone.now(),
    )


def renewal(budget: str, now: datetime) -> str:
    return budgets.renews_at(budget=budget, now=now).strftime("%Y-%m-%d %H:%M UTC")


# -- the arithmetic -----------------------------------------------------------


def test_a_day_renews_at_the_next_utc_midnight_and_a_month_on_the_first():
    new_year_eve = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
    assert budgets.renews_at(budget="day", now=new_year_eve) == datetime(2027, 1, 1, tzinfo=UTC)
    assert budgets.renews_at(budget="month", now=new_year_eve) == datetime(2027, 1, 1, tzinfo=UTC)
    february = datetime(2028, 2, 29, 5, tzinfo=UTC)
    assert budgets.renews_at(budget="day", now=february) == datetime(2028, 3, 1, tzinfo=UTC)
    assert budgets.renews_at(budget="room", now=february) == datetime(2028, 3, 1, tzinfo=UTC)
    # 08:00 in Seoul is still the day before in UTC.
    seoul = datetime(2026, 12, 5, 8, tzinfo=ZoneInfo("Asia/Seoul"))
    assert budgets.renews_at(budget="day", now=seoul) == datetime(2026, 12, 5, tzinfo=UTC)


def test_a_user_s_own_budgets_replace_the_settings_and_unlimited_lifts_both(settings, user):
    settings.CHAT_USER_TOKENS_PER_DAY, settings.CHAT_USER_TOKENS_PER_MONTH = 1000, 20_000
    assert budgets.user_limits(budget=None) == {"day": 1000, "month": 20_000}
    own = UserBudget(user=user, tokens_per_day=50)
    assert budgets.user_limits(budget=own) == {"day": 50, "month": 20_000}
    own.unlimited = True
    assert budgets.user_limits(budget=own) == {"day": None, "month": None}
    settings.CHAT_USER_TOKENS_PER_DAY = settings.CHAT_USER_TOKENS_PER_MONTH = None
    assert budgets.user_limits(budget=None) == {"day": None, "month": None}


@pytest.mark.django_db
def test_a_reservation_must_fit_in_what_is_left_of_the_day(settings, user, room_factory):
    settings.CHAT_USER_TOKENS_PER_DAY = 1000
    room, now = room_factory(), timezone.now()
    charge(user, room, 600)
    budgets.budget_check(room=room, user_id=user.pk, needed=400, now=now)
    with pytest.raises(budgets.Spent) as spent:
        budgets.budget_check(room=room, user_id=user.pk, needed=401, now=now)
    assert (spent.value.budget, spent.value.left, spent.value.needed) == ("day", 400, 401)
    assert spent.value.renews == day_start(now) + timedelta(days=1)
    # Yesterday's spending is yesterday's.
    Charge.objects.update(at=now - timedelta(days=1))
    budgets.budget_check(room=room, user_id=user.pk, needed=1000, now=now)


@pytest.mark.django_db
def test_a_month_counts_its_own_days_and_a_room_every_member(
    settings, user, user_factory, room_factory
):
    settings.CHAT_USER_TOKENS_PER_MONTH = 1000
    room, bob = room_factory(), user_factory("bob")
    now = datetime(2026, 12, 20, 12, tzinfo=UTC)
    charge(user, room, 700, at=datetime(2026, 12, 1, tzinfo=UTC))
    charge(user, room, 500, at=datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    budgets.budget_check(room=room, user_id=user.pk, needed=300, now=now)
    with pytest.raises(budgets.Spent) as spent:
        budgets.budget_check(room=room, user_id=user.pk, needed=301, now=now)
    assert (spent.value.budget, spent.value.left) == ("month", 300)
    assert spent.value.renews == datetime(2027, 1, 1, tzinfo=UTC)

    settings.CHAT_USER_TOKENS_PER_MONTH = None
    room.monthly_token_budget = 1500
    charge(bob, room, 600, at=datetime(2026, 12, 5, tzinfo=UTC))
    budgets.budget_check(room=room, user_id=user.pk, needed=200, now=now)
    # A deleted account's question still counts against the room.
    with pytest.raises(budgets.Spent) as spent:
        budgets.budget_check(room=room, user_id=None, needed=201, now=now)
    assert (spent.value.budget, spent.value.left) == ("room", 200)
    assert "this room's monthly token budget has 200 tokens left" in spent.value.text()


def test_the_explanation_is_in_the_reader_s_language():
    spent = budgets.Spent(
        budget="month", left=1200, needed=4200, renews=datetime(2027, 1, 1, tzinfo=UTC), asker_id=1
    )
    with translation.override("ko"):
        assert spent.text() == (
            "AI가 답할 수 없습니다. 한 달 토큰 예산이 1,200토큰 남았는데 답변 하나에 "
            "4,200토큰까지 필요할 수 있습니다. 예산은 2027-01-01 00:00 UTC에 다시 채워집니다."
        )
    assert spent.text(own=False).startswith(
        "The AI cannot answer: the asker's monthly token budget has 1,200 tokens left"
    )


@pytest.mark.django_db
def test_the_reservation_is_the_estimated_prompt_plus_the_ceiling_and_the_end_replaces_it(
    settings, user, room_factory, message_factory
):
    settings.CHAT_MAX_REPLY_TOKENS = 300
    room = room_factory(system_prompt="Be brief.")
    message_factory(room, "How far is the moon?", author=user)
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    reserved = budgets.charge_reserve(room=room, reply=reply, asker_id=user.pk)
    prompt = tokens_estimate_messages(messages=selectors.room_history(room=room, before=reply))
    assert (reserved.prompt_tokens, reserved.completion_tokens) == (prompt, 300)
    assert (reserved.tokens, reserved.settled, reserved.user_id) == (prompt + 300, False, user.pk)

    reply.content, reply.model = "About 384,000 km.", "test-model"
    reply.prompt_tokens, reply.completion_tokens = 21, 9
    budgets.charge_settle(reply=reply)
    reserved.refresh_from_db()
    assert (reserved.tokens, reserved.settled, reserved.estimated) == (30, True, False)
    assert reserved.model == "test-model"


@pytest.mark.django_db
def test_without_reported_usage_the_estimate_is_charged_and_no_text_costs_nothing(
    user, room_factory, message_factory
):
    room = room_factory()
    message_factory(room, "Say something", author=user)
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    reserved = budgets.charge_reserve(room=room, reply=reply, asker_id=user.pk)
    reply.content = "Something, said at some length."
    budgets.charge_settle(reply=reply)
    reserved.refresh_from_db()
    expected = reserved.prompt_tokens + tokens_estimate(text=reply.content)
    assert (reserved.tokens, reserved.settled, reserved.estimated) == (expected, True, True)

    reply.content = ""
    again = budgets.charge_reserve(room=room, reply=reply, asker_id=user.pk)
    budgets.charge_settle(reply=reply)
    again.refresh_from_db()
    assert (again.tokens, again.settled) == (0, True)


@pytest.mark.django_db
def test_a_continued_reply_is_charged_for_its_new_text_only(user, room_factory, message_factory):
    room = room_factory()
    message_factory(room, "Tell a story", author=user)
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    fresh = budgets.prompt_estimate(room=room, reply=reply)
    reply.content = "Once upon a time"
    reserved = budgets.charge_reserve(room=room, reply=reply, asker_id=user.pk)
    # The text kept is sent again with the request.
    assert reserved.prompt_tokens > fresh
    reply.content += ", the end."
    budgets.charge_settle(reply=reply)
    reserved.refresh_from_db()
    assert reserved.completion_tokens == tokens_estimate(text=", the end.")


@pytest.mark.django_db
def test_a_reply_nobody_finishes_is_settled_when_it_is_ended(user, room_factory, message_factory):
    room = room_factory()
    message_factory(room, "Hello?", author=user)
    reply = Message.objects.create(room=room, role="assistant", status="streaming")
    reserved = budgets.charge_reserve(room=room, reply=reply, asker_id=user.pk)
    # Saved as it streamed, then its process died.
    Message.objects.filter(pk=reply.pk).update(content="Hi there")
    assert claims.end_stale(rows=[(reply.pk, None)], error="gone") == 1
    reserved.refresh_from_db()
    assert reserved.settled
    assert reserved.tokens == reserved.prompt_tokens + tokens_estimate(text="Hi there")


# -- in a room ------------------------------------------------------------------


@pytest.fixture
def room(room_factory, user_factory):
    room = room_factory(name="Shared")
    room.members.add(user_factory("bob"))
    return room


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.get(username="bob")


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
