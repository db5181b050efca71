"""REDIS_URL forms: plain and TLS URLs pass through to redis-py; Sentinel URLs are
parsed here (a real Sentinel: tests/test_sentinel.py); clients are shared per event loop."""

import asyncio
import os
import subprocess
import sys

import pytest

from chat.redis_url import (
    BadRedisURL,
    Sentinel,
    channel_layer_host,
    redis_client,
    redis_client_sync,
    sentinel_parse,
)
from tests.servers import ROOT


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:secret@redis.internal:6380/0?ssl_cert_reqs=required",
        "unix:///run/redis.sock?db=1",
    ],
)
def test_other_urls_go_to_redis_py_unchanged(url):
    assert sentinel_parse(url) is None
    assert channel_layer_host(url) == url


def test_a_sentinel_url_names_the_sentinels_the_master_and_its_options():
    url = "rediss+sentinel://:p%40ss@s1:26379,s2:26380,[::1]:26381/my-master/2?ssl_cert_reqs=none"
    assert sentinel_parse(url) == Sentinel(
        sentinels=[("s1", 26379), ("s2", 26380), ("::1", 26381)],
        master="my-master",
        db=2,
        options={"ssl_cert_reqs": "none", "password": "p@ss", "ssl": True},
    )
    assert channel_layer_host("redis+sentinel://s1:26379/mymaster") == {
        "sentinels": [("s1", 26379)],
        "master_name": "mymaster",
        "db": 0,
    }


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://s1:26379", "needs the master's name"),
        ("redis+sentinel://s1:26379/", "needs the master's name"),
        ("redis+sentinel://s1/mymaster", "each sentinel is host:port, not 's1'"),
        ("redis+sentinel://s1:port/mymaster", "not 's1:port'"),
        ("redis+sentinel://s1:26379,/mymaster", "not ''"),
        ("redis+sentinel://s1:26379/mymaster/zero", "a number, not 'zero'"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong(url, says):
    with pytest.raises(BadRedisURL, match=says):
        sentinel_parse(url)


def test_the_server_refuses_to_start_on_a_malformed_sentinel_url():
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": "redis+sentinel://s1:26379"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "redis+sentinel:// needs the master's name" in result.stderr


@pytest.mark.asyncio
async def test_each_event_loop_shares_one_client_per_url_and_options(settings, redis_url):
    client = redis_client()
    assert redis_client() is client
    assert await client.ping()
    assert redis_client(socket_timeout=1) is not client
    settings.REDIS_URL = redis_url.replace("/0", "/1")
    assert redis_client() is not client

    # redis-py's asyncio pool cannot be used from another event loop.
    other = await asyncio.to_thread(asyncio.run, _client_of_a_new_loop())
    assert other is not client


async def _client_of_a_new_loop():
    return redis_client()


def test_threads_share_the_blocking_client(redis_url):
    client = redis_client_sync(socket_timeout=1)
    assert client.ping()
    assert redis_client_sync(socket_timeout=1) is client
    assert redis_client_sync() is not client
