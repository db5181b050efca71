import asyncio

import pytest
import redis
from asgiref.sync import sync_to_async

from chat import ratelimit
from tests.fakeopenai import Reply
from tests.wsutil import action, messages_in, receive_until, reply_finished, send


def hit(user_id: int) -> float:
    # Each asyncio.run is a new event loop, hence a new Redis client: what one
    # process counted, another sees.
    return asyncio.run(ratelimit.message_rate_hit(user_id=user_id))


def test_the_limit_is_counted_in_redis_per_user(settings, redis_url, redis_keys):
    settings.CHAT_RATE_LIMIT, settings.CHAT_RATE_WINDOW = 3, 60
    assert [hit(7) for _ in range(3)] == [0.0, 0.0, 0.0]
    retry_after = hit(7)
    assert 0 < retry_after <= 60
    assert hit(8) == 0.0, "another user has a count of their own"
    keys = redis.Redis.from_url(redis_url).keys(f"{redis_keys}:rate:7:*")
    assert len(keys) == 1
    assert 0 < redis.Redis.from_url(redis_url).ttl(keys[0]) <= 60


def test_without_redis_one_process_counts_in_memory(settings):
    settings.REDIS_URL = ""
    settings.CHAT_RATE_LIMIT = 1
    settings.CHAT_REDIS_PREFIX = "memory-test"
    assert hit(1) == 0.0
    assert hit(1) > 0


# Every model call counts, not only a send.

TOO_FAST = "You are sending messages too fast. Try again in"


def too_fast(frame: str) -> bool:
    return 'id="composer-answer"' in frame and "too fast" in frame


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_regenerate_counts_like_a_send(room_factory, connect, model, settings):
    settings.CHAT_RATE_LIMIT = 2
    model.queue(Reply("First."), Reply("Second."), Reply("Third."))
    room = await sync_to_async(room_factory)(name="Counted")
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    await receive_until(tab, reply_finished)
    await tab.send_to(text_data=action("regenerate"))
    await receive_until(tab, reply_finished)

    await tab.send_to(text_data=action("regenerate"))
    notice = await receive_until(tab, too_fast)
    assert TOO_FAST in notice[-1]
    rows = await sync_to_async(list)(room.messages.values_list("role", "content"))
    assert rows == [("user", "question"), ("assistant", "Second.")], "nothing changed"
    assert len(model.requests) == 2, "the model was not called"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_continue_counts_like_a_send(room_factory, connect, model, settings):
    settings.CHAT_RATE_LIMIT = 1
    room = await sync_to_async(room_factory)(name="Counted", max_reply_tokens=2)
    model.queue(Reply("cut off here"))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("question"))
    reply = messages_in((await receive_until(tab, reply_finished))[-1])[-1]

    await tab.send_to(text_data=action("continue", message=str(reply.pk)))
    assert TOO_FAST in (await receive_until(tab, too_fast))[-1]
    assert len(model.requests) == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_tax_law_question_counts_its_search_too(room_factory, connect, model, settings):
    """A "!" question calls the embedding model and then the chat model: two calls."""
    settings.CHAT_RATE_LIMIT = 1
    room = await sync_to_async(room_factory)(name="Counted")
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=send("!퇴직금의 소득 구분은?"))
    notice = await receive_until(tab, too_fast)
    assert TOO_FAST in notice[-1] and 'data-outcome="refused"' in notice[-1]
    assert not await room.messages.aexists(), "nothing saved"
    assert model.requests == [] and model.embedding_requests == []
