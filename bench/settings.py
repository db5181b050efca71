"""Settings for benchmark servers: the app's own, with the channel layer chosen by BENCH_LAYER.

app     the layer config/settings.py builds (RedisChannelLayer, capacity 1000)
default RedisChannelLayer with channels-redis defaults, as the usual tutorial ships it
pubsub  RedisPubSubChannelLayer: one PUBLISH per group_send, fanned out in each process
"""

import os

from config.settings import *  # noqa: F403
from config.settings import CHANNEL_LAYERS, REDIS_URL

_PREFIX = os.environ.get("CHANNELS_PREFIX", "asgi")
_LAYERS = {
    "app": CHANNEL_LAYERS["default"],
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": _PREFIX},
    },
    "pubsub": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": _PREFIX},
    },
}
CHANNEL_LAYERS = {"default": _LAYERS[os.environ.get("BENCH_LAYER", "app")]}
