"""Budgets held by real daphne processes sharing one database: one running out mid-
conversation and renewing the next day, two processes racing for the last of one,
and a model server that reports no usage."""

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    Stack,
    browser_session,
    create_room,
    frames_until,
    open_socket,
    running_stack,
)
from tests.test_shared_live import shared_room
from tests.wsutil import messages_in, text_of

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CEILING = 100
SIXTY_WORDS = Reply(chunks=tuple(f"w{i} " for i in range(60)), tokens_per_second=60)
# The server reports 300 tokens for it, while its text is short to estimate when it
# is sent again with the next question.
COSTLY = Reply(chunks=("a ",) * 300)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url: str, model_server: FakeOpenAI) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("budgets"),
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=2,
        CHAT_MAX_REPLY_TOKENS=str(CEILING),
    ) as stack:
        yield stack


def write(stack: Stack, sql: str, *params: object) -> None:
    with sqlite3.connect(stack.database, timeout=30) as db:
        db.execute(sql, params)


def daily_budget(stack: Stack, username: str, tokens: int) -> None:
    (user_id,) = stack.rows("select id from auth_user where username = ?", username)[0]
    write(
        stack,
        "insert into chat_userbudget (user_id, tokens_per_day, unlimited) values (?, ?, 0)"
        " on conflict (user_id) do update set tokens_per_day = excluded.tokens_per_day",
        user_id,
        tokens,
    )


def charges(stack: Stack, username: str) -> list[tuple[int, int, int]]:
    """Each charge of the user: its tokens, whether settled, whether estimated."""
    return stack.rows(
        "select tokens, settled, estimated from chat_charge join auth_user"
        " on auth_user.id = chat_charge.user_id where username = ? order by chat_charge.id",
        username,
    )


def answered(frame: str) -> bool:
    return any(m.role == "assistant" and m.status == "complete" for m in messages_in(frame))


def skipped(text: str):
    return lambda frame: any(
        m.role == "user" and text in m.text and "message__note--skipped" in m.html
        for m in messages_in(frame)
    )


async def ask(socket: aiohttp.ClientWebSocketResponse, text: str) -> None:
    await socket.send_str(json.dumps({"content": text}))


async def test_a_budget_runs_out_mid_conversation_is_explained_and_renews_the_next_day(
    stack, model_server
):
    first, second = stack.servers
    model_server.queue(COSTLY, Reply("A new day."))
    async with browser_session() as alice, browser_session() as bob:
        room_id, alice_name, _ = await shared_room(alice, bob, first)
        asker = await open_socket(alice, first, room_id)
        watcher = await open_socket(bob, second, room_id)

        await ask(asker, "Write a lot")
        await frames_until(watcher, answered, within=30)
        # What the first reply cost (its prompt and the ceiling's 100 tokens), and less
        # than a second one's reservation (its prompt plus the ceiling) on top.
        spent = sum(tokens for tokens, _settled, _estimated in charges(stack, alice_name))
        daily_budget(stack, alice_name, spent + 50)
        await ask(asker, "And more")
        frames = await frames_until(asker, lambda f: 'id="budget-notice"' in f)
        told = text_of(frames[-1])
        tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        tomorrow += timedelta(days=1)
        assert "The AI cannot answer: your daily token budget has 50 tokens left" in told
        assert f"It renews at {tomorrow:%Y-%m-%d} 00:00 UTC." in told
        needed = int(re.search(r"a reply may need ([\d,]+)", told)[1].replace(",", ""))
        # The other member sees the question, and that the AI skipped it.
        seen = await frames_until(watcher, skipped("And more"))
        assert "the asker&#x27;s daily token budget ran out" in seen[-1]
        assert not any('id="budget-notice"' in frame for frame in seen)

        # A day later the budget has renewed. A budget that holds the next reservation
        # (the last one's, and "Good morning" with its author's name: about 20 tokens,
        # more or less by how the random user names split) still refuses it on top of
        # today's spend.
        margin = 60
        assert spent > margin
        daily_budget(stack, alice_name, needed + margin)
        write(stack, "update chat_charge set at = datetime(at, '-1 day')")
        await ask(asker, "Good morning")
        await frames_until(
            watcher,
            lambda f: any(
                m.text == "A new day." and m.status == "complete" for m in messages_in(f)
            ),
            within=30,
        )
        await asker.close()
        await watcher.close()
    assert [(role, status) for role, status, _ in stack.messages(room_id)] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert stack.rows("select skipped_for from chat_message where content = 'And more'") == [
        ("day",)
    ]
    assert [settled for _, settled, _ in charges(stack, alice_name)] == [1, 1]


async def test_two_processes_let_only_one_question_through_the_last_of_a_budget(
    stack, model_server
):
    first, second = stack.servers
    # Slow enough that both claims come while the first reply streams, and costly
    # enough that the second would not fit after it either.
    model_server.queue(SIXTY_WORDS, SIXTY_WORDS)
    async with browser_session() as alice:
        room_a = await create_room(alice, first, "Room A")
        room_b = await create_room(alice, first, "Room B")
        (alice_name,) = stack.rows("select username from auth_user order by id desc limit 1")[0]
        # Room for one reservation (an estimate of a few tokens plus the ceiling), not two.
        daily_budget(stack, alice_name, CEILING + 50)
        tab_a = await open_socket(alice, first, room_a)
        tab_b = await open_socket(alice, second, room_b)
        await asyncio.gather(ask(tab_a, "Question A"), ask(tab_b, "Question B"))
        results = await asyncio.gather(
            frames_until(tab_a, lambda f: answered(f) or 'id="budget-notice"' in f, within=30),
            frames_until(tab_b, lambda f: answered(f) or 'id="budget-notice"' in f, within=30),
        )
        await tab_a.close()
        await tab_b.close()
    outcomes = sorted(
        "told" if 'id="budget-notice"' in frames[-1] else "answered" for frames in results
    )
    assert outcomes == ["answered", "told"]
    replies = stack.rows(
        "select count(*) from chat_message where role = 'assistant' and room_id in (?, ?)",
        room_a,
        room_b,
    )
    assert replies == [(1,)]
    assert len(charges(stack, alice_name)) == 1


async def test_replies_of_a_server_that_reports_no_usage_are_charged_by_the_estimate(
    stack, model_server
):
    first, _ = stack.servers
    model_server.report_usage = False
    model_server.queue(Reply("Counted without being reported."))
    try:
        async with browser_session() as alice:
            room_id = await create_room(alice, first, "No usage")
            (alice_name,) = stack.rows("select username from auth_user order by id desc limit 1")[0]
            tab = await open_socket(alice, first, room_id)
            await ask(tab, "Say something")
            frames = await frames_until(tab, answered, within=30)
            await tab.close()
    finally:
        model_server.report_usage = True
    assert "Usage unknown" in frames[-1]
    ((tokens, settled, estimated),) = charges(stack, alice_name)
    assert (settled, estimated) == (1, 1)
    # The estimated prompt and the estimate of the reply's text, well under the reservation.
    assert 0 < tokens < CEILING
