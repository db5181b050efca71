"""Shared fixtures: a real Redis, the tests' OpenAI-compatible server, factories."""

import asyncio
import io
import json
import os
import uuid
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.db.models import Max
from django.test import Client
from django.utils import translation

from chat.models import Message, Room, TaxLawDocument
from chat.turns import supervisor
from tests.cleanup import exit_guard, leftovers_stop
from tests.fakeopenai import FakeOpenAI, fake_embedding
from tests.servers import RedisServer
from tests.slow import patience
from tests.wsutil import Communicator

ORIGIN = (b"origin", b"http://localhost")
# The tutorial's first 10 tax-law documents with their embeddings; CI keeps it
# next to the repository. Data from outside is never committed.
TAXLAW_SAMPLE = Path(
    os.environ.get("TAXLAW_SAMPLE")
    or Path(__file__).resolve().parents[2] / "shared/data/sample-taxlaw-10.jsonl"
)


@pytest.fixture(autouse=True)
def background_work_ends() -> Iterator[None]:
    """Whatever a test started in the background ends with it, before its database
    is flushed (this fixture is set up after pytest-django's, so torn down first)."""
    yield
    if left := leftovers_stop():
        warnings.warn(f"background work outlived its test and was stopped: {left}", stacklevel=1)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    exit_guard()
    leftovers_stop()


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
    """Route every test through the app's Redis layer, under channels no other run shares."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    django_settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chat.layers.RoomPubSubLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": prefix},
        }
    }
    channel_layers.backends.clear()
    return prefix


@pytest.fixture(autouse=True)
def fresh_channel_layer(channels_prefix: str) -> None:
    """A new layer object per test: channels-redis binds its locks to the first event loop
    that uses them, and every async test runs on a loop of its own."""
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def redis_keys(redis_url: str, settings) -> str:
    """Our own Redis keys (the rate limit) under a prefix of this test's own."""
    settings.REDIS_URL = redis_url
    settings.CHAT_REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}"
    return settings.CHAT_REDIS_PREFIX


@pytest.fixture(autouse=True)
def default_language() -> Iterator[None]:
    """A request's language stays active in its thread after the test client returns;
    each test starts in the default one."""
    translation.activate(django_settings.LANGUAGE_CODE)
    yield
    translation.activate(django_settings.LANGUAGE_CODE)


@pytest.fixture(scope="session")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def running_server() -> Iterator[FakeOpenAI]:
    """A model server of the module's own, for the tests of tests/fakeopenai.py itself."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def server(running_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    # Shared for speed; reset so one test's leftover replies can't answer the next.
    running_server.reset()
    running_server.default_rate = 0.0
    running_server.default_text = None
    yield running_server
    running_server.reset()


@pytest.fixture(autouse=True)
def model(model_server: FakeOpenAI, settings) -> FakeOpenAI:
    """Every test talks to the tests' model server unless it says otherwise."""
    model_server.reset()
    settings.OPENAI_API_KEY = "test-key"
    settings.OPENAI_BASE_URL = model_server.base_url
    settings.OPENAI_MODEL = "test-model"
    return model_server


PASSWORD = "correct-horse-battery-9"


@pytest.fixture
def user_factory(django_user_model) -> Callable[..., AbstractBaseUser]:
    def make(username: str = "alice", **kwargs) -> AbstractBaseUser:
        return django_user_model.objects.create_user(username=username, password=PASSWORD, **kwargs)

    return make


@pytest.fixture
def user(user_factory) -> AbstractBaseUser:
    return user_factory("alice")


@pytest.fixture
def client(client, user):
    """pytest-django's test client, logged in as `user`."""
    client.force_login(user)
    return client


@pytest.fixture
def bob(user_factory) -> AbstractBaseUser:
    return user_factory("bob")


@pytest.fixture
def as_bob(bob) -> Client:
    """A second browser, logged in as `bob`."""
    browser = Client()
    browser.force_login(bob)
    return browser


@pytest.fixture
def room_factory(user) -> Callable[..., Room]:
    def make(name: str = "Test room", system_prompt: str = "", **kwargs) -> Room:
        kwargs.setdefault("owner", user)
        return Room.objects.create(name=name, system_prompt=system_prompt, **kwargs)

    return make


@pytest.fixture
def message_factory() -> Callable[..., Message]:
    def make(room: Room, content: str = "Hello", **kwargs) -> Message:
        kwargs.setdefault("role", Message.Role.USER)
        return Message.objects.create(room=room, content=content, **kwargs)

    return make


@pytest.fixture
def taxlaw_document_factory() -> Callable[..., TaxLawDocument]:
    """A document shaped like the dataset's. Its embedding defaults to the tests'
    server's vector for its title, so a search for the title finds it first."""

    def make(
        title: str = "급여에 포함하여 지급되는 퇴직금의 소득구분",
        *,
        number: str = "소득46011-364",
        url: str = "https://taxlaw.example/docs/1",
        embedding: list[float] | None = None,
        **fields: str,
    ) -> TaxLawDocument:
        # vec0 inserts do not report the new primary key, so pick it here.
        pk = (TaxLawDocument.objects.aggregate(last=Max("pk"))["last"] or 0) + 1
        content = {"제목": title, "문서번호": number, "법령분류": "종합소득세", **fields}
        return TaxLawDocument.objects.create(
            pk=pk,
            page_content=json.dumps(content, ensure_ascii=False),
            metadata={"url": url},
            embedding=embedding or fake_embedding(title),
        )

    return make


@pytest.fixture
def taxlaw_sample() -> list[TaxLawDocument]:
    """The 10-document sample, loaded as a user loads it."""
    if not TAXLAW_SAMPLE.exists():
        pytest.skip(f"the tax-law sample is not at {TAXLAW_SAMPLE}; set TAXLAW_SAMPLE to it")
    call_command("load_jsonl", "chat.TaxLawDocument", str(TAXLAW_SAMPLE), stdout=io.StringIO())
    return list(TaxLawDocument.objects.order_by("pk"))


async def replies_finished(within: float = 10) -> None:
    """Wait for the turns this event loop is running (earlier tests' loops are closed)."""
    await asyncio.wait_for(asyncio.gather(*supervisor.turns_running()), patience(within))


def session_cookie(user: AbstractBaseUser) -> tuple[bytes, bytes]:
    """The Cookie header of a browser logged in as `user`."""
    browser = Client()
    browser.force_login(user)
    return (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())


@pytest_asyncio.fixture
async def connect(user) -> AsyncIterator[Callable[..., Awaitable[WebsocketCommunicator]]]:
    """Open websockets to the full ASGI application, as `user` unless told otherwise."""
    from config.asgi import application

    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        path: str, *, as_user: AbstractBaseUser | None = None, origin: tuple = ORIGIN
    ) -> WebsocketCommunicator:
        cookie = await sync_to_async(session_cookie)(as_user or user)
        communicator = Communicator(application, path, headers=[origin, cookie])
        opened.append(communicator)
        connected, code = await communicator.connect()
        assert connected, f"websocket to {path} was refused with {code}"
        return communicator

    yield open_socket
    # Every socket is closed, even when closing one fails.
    failures = []
    for communicator in opened:
        try:
            await communicator.disconnect()
        except Exception as exc:
            failures.append(exc)
    if failures:
        raise failures[0]
