"""Token budgets: the arithmetic, the reservation and its settling. What the room shows
when one runs out is tests/test_budgets_room.py."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone, translation

from chat import budgets, selectors
from chat.budget_models import Charge, UserBudget, day_start
from chat.models import Message
from chat.tokens import tokens_estimate, tokens_estimate_messages
from chat.turns import claims


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
