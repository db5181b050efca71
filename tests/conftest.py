"""Shared fixtures: a real Redis, the tests' OpenAI-compatible server, factories."""

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings

from chat.models import Message, Room
from tests.fakeopenai import FakeOpenAI
from tests.servers import RedisServer

ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when set, else a redis-server this session starts and stops."""
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def channels_prefix(redis_url: str) -> str:
    """Route every test through channels-redis, under keys no other run shares."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    django_settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "capacity": 1000, "expiry": 30, "prefix": prefix},
        }
    }
    channel_layers.backends.clear()
    return prefix


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def model(model_server: FakeOpenAI, settings) -> FakeOpenAI:
    """Every test talks to the tests' model server unless it says otherwise."""
    model_server.reset()
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = model_server.base_url
    settings.OPENAI_MODEL = "test-model"
    return model_server


@pytest.fixture
def room_factory() -> Callable[..., Room]:
    def make(name: str = "Test room", system_prompt: str = "", **kwargs) -> Room:
        return Room.objects.create(name=name, system_prompt=system_prompt, **kwargs)

    return make


@pytest.fixture
def message_factory() -> Callable[..., Message]:
    def make(room: Room, content: str = "Hello", **kwargs) -> Message:
        kwargs.setdefault("role", Message.Role.USER)
        return Message.objects.create(room=room, content=content, **kwargs)

    return make


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Callable[..., Awaitable[WebsocketCommunicator]]]:
    """Open websockets to the full ASGI application; all are closed afterwards."""
    from config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(path: str, *, origin: tuple[bytes, bytes] = ORIGIN):
        communicator = WebsocketCommunicator(application, path, headers=[origin])
        opened.append(communicator)
        connected, _ = await communicator.connect()
        assert connected, f"websocket to {path} was refused"
        return communicator

    yield open_socket
    for communicator in opened:
        await communicator.disconnect()
