"""Broadcast fragments: rendered once for every language, they match a render in each."""

import pytest
from django.conf import settings
from django.utils import translation

from chat import rendering
from chat.models import Message

pytestmark = pytest.mark.django_db

STATES = [
    {"role": "assistant", "status": "streaming", "content": ""},
    {"role": "assistant", "status": "streaming", "content": "Half **a** reply `x`"},
    {"role": "assistant", "status": "complete", "content": "# Done\n\n```python\nprint(1)\n```"},
    {"role": "assistant", "status": "stopped", "content": "cut"},
    {
        "role": "assistant",
        "status": "complete",
        "content": "grounded",
        "sources": [
            {"title": "퇴직금", "number": "소득46011-364", "url": "https://taxlaw.example/1"},
        ],
    },
    {
        "role": "assistant",
        "status": "interrupted",
        "content": "lost",
        "error": "The server stopped while writing this reply.",
    },
    {"role": "assistant", "status": "error", "content": "", "error": "HTTP 429 from the model."},
    {
        "role": "assistant",
        "status": "complete",
        "content": "counted",
        "model": "test-model",
        "prompt_tokens": 1200,
        "completion_tokens": 34,
    },
    {"role": "user", "status": "complete", "content": "<b>hi</b>\nStop Retry \x1e"},
]


@pytest.mark.parametrize("state", STATES, ids=lambda s: f"{s['role']}-{s['status']}")
def test_a_broadcast_rendered_once_matches_a_render_in_each_language(room_factory, state):
    message = Message.objects.create(room=room_factory(), seq=3, **state)
    once = rendering.messages_in_every_language(message)
    assert set(once) == {code for code, _name in settings.LANGUAGES}
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            assert once[code] == rendering.message_oob(message), code


def test_the_chrome_is_translated(room_factory):
    message = Message.objects.create(
        room=room_factory(), role="assistant", status="streaming", content="x"
    )
    once = rendering.messages_in_every_language(message)
    assert ">Stop<" in once["en"] and "Stop" not in once["ko"]
    assert "\x1e" not in once["en"] + once["ko"]
