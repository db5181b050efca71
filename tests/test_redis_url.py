"""REDIS_URL forms: plain and TLS URLs pass through; Sentinel URLs reach the master
through a real redis-server in Sentinel mode, for the channel layer, the rate limit
and /healthz."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer
from django.test import Client

from chat import ratelimit
from chat.redis_url import BadRedisURL, Sentinel, channel_layer_host, sentinel_parse
from tests.servers import ROOT, RedisServer, free_port, wait_for_port


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


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and one sentinel watching it, both real redis-servers."""
    master = RedisServer().start()
    port = free_port()
    config = Path(tmp_path_factory.mktemp("sentinel")) / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nsentinel monitor chat 127.0.0.1 {master.port} 1\n"
    )
    process = subprocess.Popen(
        [str(RedisServer.binary), str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        yield f"redis+sentinel://127.0.0.1:{port}/chat/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        master.stop()


@pytest.mark.django_db
def test_healthz_pings_the_master_through_the_sentinel(settings, sentinel_url):
    settings.REDIS_URL = sentinel_url
    assert Client().get("/healthz").json()["redis"] == "ok"


@pytest.mark.asyncio
async def test_the_rate_limit_counts_on_the_master(settings, sentinel_url):
    settings.REDIS_URL, settings.CHAT_RATE_LIMIT = sentinel_url, 1
    user_id = int(uuid.uuid4().int % 1_000_000)
    assert await ratelimit.message_rate_hit(user_id=user_id) == 0
    assert await ratelimit.message_rate_hit(user_id=user_id) > 0


@pytest.mark.asyncio
async def test_the_channel_layer_delivers_through_the_master(sentinel_url):
    layer = RedisChannelLayer(hosts=[channel_layer_host(sentinel_url)], prefix="sentinel-test")
    channel = await layer.new_channel()
    await layer.group_add("room-1", channel)
    await layer.group_send("room-1", {"type": "chat.message", "html": "<p>hi</p>"})
    assert (await layer.receive(channel))["html"] == "<p>hi</p>"
    await layer.flush()


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
