"""The server's list of models (GET /v1/models), through the real SDK, and its cache."""

import pytest
from django.core.cache import cache

from chat import llm
from tests.servers import free_port


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_lists_the_chat_models_sorted_without_embeddings(model):
    model.models = ("zeta-chat", "alpha-chat", "text-embedding-3-large", "whisper-1")
    assert llm.models_list() == ["alpha-chat", "zeta-chat"]


def test_the_list_is_cached(model, settings):
    settings.CHAT_MODELS_CACHE = 60
    assert llm.models_list() == ["fake-model"]
    model.models = ("another-model",)
    assert llm.models_list() == ["fake-model"]
    cache.clear()
    assert llm.models_list() == ["another-model"]


@pytest.mark.parametrize("status", [401, 404, 500])
def test_a_server_that_cannot_list_gives_an_empty_list(model, status):
    model.models_status = status
    assert llm.models_list() == []


def test_an_unreachable_server_gives_an_empty_list(settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    assert llm.models_list() == []


def test_the_demo_model_lists_nothing_and_asks_no_server(model, settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    assert llm.models_list() == []
    assert model.requests == []
