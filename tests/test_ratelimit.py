import asyncio

import redis

from chat import ratelimit


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
