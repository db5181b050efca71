"""Random and malformed frames against the room websocket (Hypothesis).

Whatever arrives, the consumer answers every frame, keeps the connection open,
and leaves no half-written rows: each saved question has exactly one reply.
"""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from config.asgi import application
from tests.conftest import ORIGIN, replies_finished, session_cookie

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
frames = st.one_of(
    st.text(max_size=200),  # anything at all, mostly not JSON
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {"content": json_values | st.text(max_size=50)},
        optional={"HEADERS": json_values, "action": json_values},
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"action": st.sampled_from(["sync", "stop", "regenerate", "", "SYNC"])},
        optional={"since": json_values, "message": json_values},
    ).map(json.dumps),
    st.just("x" * 70_000),
)


@pytest.mark.django_db(transaction=True)
@examples(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=6))
def test_random_frames_never_break_the_room(room_factory, user, model, settings, batch):
    settings.CHAT_RATE_LIMIT = 10_000  # this test sends far faster than people do
    room = room_factory()
    cookie = session_cookie(user)
    async_to_sync(exercise)(room, cookie, batch)


async def exercise(room, cookie, batch: list[str]) -> None:
    tab = WebsocketCommunicator(application, f"/ws/chat/{room.pk}/", headers=[ORIGIN, cookie])
    connected, _ = await tab.connect()
    assert connected
    try:
        for frame in batch:
            # At the ASGI level, so an empty frame is sent too.
            await tab.send_input({"type": "websocket.receive", "text": frame})
            await settle(tab)
        await replies_finished()
        await settle(tab)
        # The connection still works: an empty message is answered with its error.
        await tab.send_to(text_data=json.dumps({"content": ""}))
        assert "This field is required." in await tab.receive_from(timeout=5)
    finally:
        await tab.disconnect()
    rows = await sync_to_async(list)(room.messages.values_list("role", "status"))
    assert all(status != "streaming" for _, status in rows), rows
    roles = [role for role, _ in rows]
    assert roles == ["user", "assistant"] * (len(roles) // 2), roles


async def settle(tab: WebsocketCommunicator) -> None:
    """Read what the server sent; none of it may close the connection."""
    while not await tab.receive_nothing(timeout=0.05):
        output = await tab.receive_output()
        assert output["type"] == "websocket.send", output
