"""Settings for benchmark servers: the app's own, with the channel layer chosen by BENCH_LAYER.

app       the layer config/settings.py builds (RedisChannelLayer, capacity 1000)
app-10k   the same with capacity 10000: capacity bounds a whole process's inbox
default   RedisChannelLayer with channels-redis defaults, as the usual tutorial ships it
pubsub    RedisPubSubChannelLayer: one PUBLISH per group_send, fanned out in each process
"""

import os

from config.settings import *  # noqa: F403
from config.settings import CHANNEL_LAYERS, REDIS_URL

_PREFIX = os.environ.get("CHANNELS_PREFIX", "asgi")
_LAYER = os.environ.get("BENCH_LAYER", "app")
_APP = CHANNEL_LAYERS["default"]
if _LAYER == "app-10k":
    CHANNEL_LAYERS = {"default": {**_APP, "CONFIG": {**_APP["CONFIG"], "capacity": 10_000}}}
elif _LAYER == "default":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": _PREFIX},
        }
    }
elif _LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": _PREFIX},
        }
    }
