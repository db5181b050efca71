"""The channel layer: channels-redis's pub/sub layer, told when its Redis connection drops.

RedisPubSubChannelLayer publishes each group message once and fans it out
inside each process, which is what lets one process stream to thousands of tabs
(docs/benchmark.md). It delivers at most once, and its own on_disconnect and
on_reconnect hooks are never called (channels_redis #406), so a Redis restart
would lose messages silently (#256). This subclass wires those two moments to
every channel of the process, as events its consumers handle:

- "layer.down" when the subscriber connection fails: each tab is closed with a
  code the page retries, so it shows that it is offline and catches up when the
  handshake succeeds again;
- "layer.reconnected" when redis-py has re-subscribed after a drop it recovered
  from by itself: whatever was published in between is lost, so each tab is
  told to re-sync.

Its in-process inboxes are unbounded: a process that falls behind would queue
every version of every message for every tab. Here a room event that names its
message ("key", chat.broadcast) replaces the one still waiting for that message
in a channel's inbox, so a consumer that is behind skips to the newest version
(each carries the whole message); a streaming reply's delta is merged into the
one waiting (chat.deltas), so no block is dropped. A channel holds at most one
event of each kind per message.

Publishing, subscribing and fan-out stay the library's own (channels-redis 4.x;
see tests/test_layers.py).
"""

import asyncio
import collections
import logging
from typing import Any

from channels_redis import pubsub
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat import deltas, metrics

logger = logging.getLogger(__name__)

DOWN = {"type": "layer.down"}
RECONNECTED = {"type": "layer.reconnected"}


class _WatchedPubSub(PubSub):
    """redis-py's PubSub, reporting its connection's failures and recoveries."""

    def __init__(self, *args: Any, shard: "_WatchedShard", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shard = shard

    async def on_connect(self, connection: Any) -> None:
        # Called on every reconnect (the first connection is made before this
        # callback is registered), after the subscriptions are restored.
        await super().on_connect(connection)
        self._shard.reconnected()

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:  # noqa: ASYNC109 (redis-py's signature)
        try:
            return await super().parse_response(block=block, timeout=timeout)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._shard.down()
            raise


class _WatchedShard(pubsub.RedisSingleShardConnection):
    def __init__(self, host: dict[str, Any], channel_layer: "_WatchedLoopLayer") -> None:
        super().__init__(host, channel_layer)
        self._down = False

    def _ensure_redis(self) -> None:
        if self._redis is None:
            super()._ensure_redis()
            client: Any = self._redis
            self._pubsub = _WatchedPubSub(connection_pool=client.connection_pool, shard=self)

    def down(self) -> None:
        if not self._down:
            self._down = True
            metrics.LAYER_DROPS.labels(recovered="no").inc()
            logger.warning(
                "lost the Redis subscription at %s; closing this process's tabs",
                self.host.get("address", self.host),
            )
            self.channel_layer.tell_every_channel(DOWN)

    def reconnected(self) -> None:
        was_down, self._down = self._down, False
        logger.warning("Redis subscription at %s restored; tabs re-sync", self.host.get("address"))
        # After an outage the tabs were already closed, and reconnect by themselves.
        if not was_down:
            metrics.LAYER_DROPS.labels(recovered="yes").inc()
            self.channel_layer.tell_every_channel(RECONNECTED)


class _NewestQueue(asyncio.Queue[bytes]):
    """A channel's inbox in which an event for a message replaces the one waiting for it,
    and a streaming reply's delta is merged into the one waiting for it."""

    def __init__(self, layer: "_WatchedLoopLayer") -> None:
        super().__init__()
        self._layer = layer

    def _init(self, maxsize: int) -> None:
        # Boxes, so that an event can be swapped in place, keeping its turn.
        self._queue: collections.deque[tuple[object, list[bytes]]] = collections.deque()
        self._waiting: dict[object, list[bytes]] = {}

    def _put(self, item: bytes) -> None:
        key = self._layer.key_of(item)
        if key is not None and (box := self._waiting.get(key)) is not None:
            box[0] = self._layer.merged(box[0], item) if key[0] == "chat.delta" else item
            metrics.VERSIONS_SKIPPED.inc()
            return
        box = [item]
        if key is not None:
            self._waiting[key] = box
        self._queue.append((key, box))

    def _get(self) -> bytes:
        key, box = self._queue.popleft()
        if key is not None and self._waiting.get(key) is box:
            del self._waiting[key]
        return box[0]


class _WatchedLoopLayer(pubsub.RedisPubSubLoopLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._shards = [
            _WatchedShard(host, self) for host in pubsub.decode_hosts(kwargs.get("hosts"))
        ]
        self._last: tuple[bytes | None, tuple[str, str] | None] = (None, None)
        self._merging: tuple[bytes | None, dict[bytes, bytes]] = (None, {})

    async def _subscribe_to_channel(self, channel: str) -> None:
        self.channels[channel] = _NewestQueue(self)
        await self._get_shard(channel).subscribe(channel)

    def key_of(self, data: bytes) -> tuple[str, str] | None:
        """The kind of event and the message it carries. A group message reaches each
        channel of the process as the same bytes object, so it is decoded once for all."""
        if data is not self._last[0]:
            event = self.channel_layer.deserialize(data)
            key = event.get("key") if isinstance(event, dict) else None
            self._last = (data, (event["type"], key) if key is not None else None)
        return self._last[1]

    def merged(self, waiting: bytes, newer: bytes) -> bytes:
        """Two deltas of a reply as one (chat.deltas.merge): only a slow channel pays this.
        Channels that fell behind together wait with equal bytes: merged once for all."""
        if newer is not self._merging[0]:
            self._merging = (newer, {})
        done = self._merging[1]
        if (found := done.get(waiting)) is None:
            event = self.channel_layer.deserialize(waiting)
            frame = deltas.merge(event["frame"], self.channel_layer.deserialize(newer)["frame"])
            found = done[waiting] = self.channel_layer.serialize(event | {"frame": frame})
        return found

    def tell_every_channel(self, event: dict[str, Any]) -> None:
        data = self.channel_layer.serialize(event)
        for queue in self.channels.values():
            queue.put_nowait(data)


class RoomPubSubLayer(pubsub.RedisPubSubChannelLayer):
    """RedisPubSubChannelLayer whose consumers hear of Redis connection drops."""

    def _get_layer(self) -> _WatchedLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = _WatchedLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            self._layers[loop] = layer
            pubsub._wrap_close(self, loop)
        return layer
