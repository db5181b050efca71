"""The app's consumer with one change docs/benchmark.md proposes, served at /ws/chat/<pk>/.

Channels' AsyncConsumer.dispatch runs close_old_connections() in a worker
thread before every handler, so forwarding one broadcast costs a thread hop.
The room's broadcasts never touch the database, so they skip it; every other
message takes the usual path.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from chat.consumers import ChatConsumer  # noqa: E402


class BroadcastFastPathConsumer(ChatConsumer):
    async def dispatch(self, message: dict[str, Any]) -> None:
        if message["type"] == "chat.message":
            await self.chat_message(message)
        else:
            await super().dispatch(message)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter([path("ws/chat/<int:pk>/", BroadcastFastPathConsumer.as_asgi())])
            )
        ),
    }
)
