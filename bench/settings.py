"""Settings for benchmark servers: the app's own, with the channel layer chosen by BENCH_LAYER.

app       the layer config/settings.py builds (chat.layers.RoomPubSubLayer)
default   RedisChannelLayer with channels-redis defaults, as the usual tutorial ships it
"""

import os

from config.settings import *  # noqa: F403
from config.settings import REDIS_URL

if os.environ.get("BENCH_LAYER", "app") == "default":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": os.environ.get("CHANNELS_PREFIX", "asgi")},
        }
    }
