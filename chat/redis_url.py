"""REDIS_URL for everything that connects to Redis: the channel layer, presence,
leases, the connection bound, the rate limit and /healthz. Each gets its client
here (redis_client, redis_client_sync), so every URL form works for all of them.

Any URL redis-py reads (`redis://`, `rediss://` with TLS options as query
parameters, `unix://`), or a Sentinel URL, which redis-py has no form for:

    redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]

`rediss+sentinel://` reaches the master over TLS; query parameters go to the
master's connections as they would with `rediss://`. The password is the
master's; the sentinels themselves are reached without one.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")


class BadRedisURL(ImproperlyConfigured):
    """REDIS_URL cannot be used; the message says why."""


@dataclass(frozen=True)
class Sentinel:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    # The master's connections: password, username, ssl, TLS options.
    options: dict[str, Any] = field(default_factory=dict)


def sentinel_parse(url: str) -> Sentinel | None:
    """The Sentinel a URL names, None for any other Redis URL; BadRedisURL if malformed."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SENTINEL_SCHEMES:
        return None
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    options: dict[str, Any] = dict(parse_qsl(query))
    if at:
        username, _, password = userinfo.partition(":")
        options |= {"username": unquote(username) or None, "password": unquote(password) or None}
    if scheme == "rediss+sentinel":
        options["ssl"] = True
    master, _, db = path.strip("/").partition("/")
    if not master:
        raise BadRedisURL(f"{scheme}:// needs the master's name: {scheme}://host:port/mymaster")
    if db and not db.isdecimal():
        raise BadRedisURL(f"the database in a {scheme}:// URL is a number, not {db!r}")
    return Sentinel(
        sentinels=[_host_port(host) for host in hosts.split(",")],
        master=unquote(master),
        db=int(db or 0),
        options={k: v for k, v in options.items() if v is not None},
    )


def _host_port(entry: str) -> tuple[str, int]:
    host, _, port = entry.strip().rpartition(":")
    if not host or not port.isdecimal():
        raise BadRedisURL(f"each sentinel is host:port, not {entry!r}")
    return host.strip("[]"), int(port)


def channel_layer_host(url: str) -> str | dict[str, Any]:
    """The `hosts` entry channels-redis takes for this URL."""
    if (sentinel := sentinel_parse(url)) is None:
        return url
    return {
        "sentinels": sentinel.sentinels,
        "master_name": sentinel.master,
        "db": sentinel.db,
        **sentinel.options,
    }


def sync_client(url: str, **options: Any) -> redis.Redis:
    if (sentinel := sentinel_parse(url)) is None:
        return redis.Redis.from_url(url, **options)
    return redis.sentinel.Sentinel(sentinel.sentinels, **_timeouts(options)).master_for(
        sentinel.master, db=sentinel.db, **sentinel.options, **options
    )


def async_client(url: str, **options: Any) -> redis.asyncio.Redis:
    if (sentinel := sentinel_parse(url)) is None:
        return redis.asyncio.Redis.from_url(url, **options)
    return redis.asyncio.sentinel.Sentinel(sentinel.sentinels, **_timeouts(options)).master_for(
        sentinel.master, db=sentinel.db, **sentinel.options, **options
    )


def _timeouts(options: dict[str, Any]) -> dict[str, Any]:
    """Asking a sentinel for the master takes the caller's timeouts too."""
    keys = ("socket_timeout", "socket_connect_timeout")
    return {key: options[key] for key in keys if key in options}


# Clients of settings.REDIS_URL, each with its own connection pool, kept for reuse.
# redis-py's asyncio pool belongs to the event loop that made it, so those are per loop.
_loop_clients: dict[asyncio.AbstractEventLoop, dict[tuple[Any, ...], redis.asyncio.Redis]] = {}
_sync_clients: dict[tuple[Any, ...], redis.Redis] = {}


def redis_client(**options: Any) -> redis.asyncio.Redis:
    """This event loop's client of REDIS_URL with these options (timeouts, say)."""
    loop = asyncio.get_running_loop()
    if loop not in _loop_clients:
        # A closed loop's clients can never be used again.
        for closed in [other for other in _loop_clients if other.is_closed()]:
            del _loop_clients[closed]
        _loop_clients[loop] = {}
    clients = _loop_clients[loop]
    key = (settings.REDIS_URL, *sorted(options.items()))
    if key not in clients:
        clients[key] = async_client(settings.REDIS_URL, **options)
    return clients[key]


def redis_client_sync(**options: Any) -> redis.Redis:
    """The process's blocking client of REDIS_URL with these options; thread-safe."""
    key = (settings.REDIS_URL, *sorted(options.items()))
    if key not in _sync_clients:
        _sync_clients[key] = sync_client(settings.REDIS_URL, **options)
    return _sync_clients[key]
