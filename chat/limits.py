"""What one model request may cost: the reply ceiling and the context window.

Every request asks for at most the room's reply ceiling (`max_tokens`), and its
prompt plus that ceiling fits the room's context window, so the server never
refuses it for length. The system prompt (with a "!" question's documents) and
the newest turns are always kept; the oldest messages are left out first.
Tokens are estimated offline (chat.tokens), erring high, so what is sent fits.
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_noop

from chat import llm, selectors
from chat.models import Room
from chat.tokens import MESSAGE_OVERHEAD, tokens_estimate, tokens_estimate_messages

# Saved as the reply's error; the page translates it (chat_tags.reply_error).
PROMPT_TOO_LONG = gettext_noop(
    "The room's prompt and the latest message are too long for the context window."
)


def limits_reply_ceiling(*, room: Room) -> int:
    """The most tokens a reply in this room may take: the room's own, never above
    CHAT_MAX_REPLY_TOKENS (which may have been lowered since the room set it)."""
    ceiling: int = settings.CHAT_MAX_REPLY_TOKENS
    own = room.max_reply_tokens
    return ceiling if own is None else min(own, ceiling)


def limits_context_window(*, room: Room) -> int:
    """The tokens one request may hold, prompt and reply: the room's own, never above
    CHAT_CONTEXT_TOKENS."""
    window: int = settings.CHAT_CONTEXT_TOKENS
    own = room.context_tokens
    return window if own is None else min(own, window)


def limits_prompt_budget(*, room: Room) -> int:
    """The tokens a prompt may take: the window less the reply ceiling, which the
    server reserves for the reply."""
    return limits_context_window(room=room) - limits_reply_ceiling(room=room)


def turn_tokens(turn: llm.ChatTurn) -> int:
    return tokens_estimate(text=turn.get("content", "")) + MESSAGE_OVERHEAD


def context_fit(*, turns: list[llm.ChatTurn], budget: int, keep: int = 1) -> list[llm.ChatTurn]:
    """`turns` with their oldest messages left out until the estimate fits `budget`.

    The system turn (the first, if any) and the last `keep` turns (the question,
    or the text being continued) are always sent; when they alone do not fit,
    raises ModelError, as the server would refuse the request."""
    head = turns[:1] if turns and turns[0]["role"] == "system" else []
    body = turns[len(head) :]
    keep = min(keep, len(body))
    rest, kept = body[: len(body) - keep], body[len(body) - keep :]
    used = tokens_estimate_messages(messages=head + kept)
    if used > budget:
        raise llm.ModelError(PROMPT_TOO_LONG, kind="context")
    start = len(rest)
    while start > 0 and used + (cost := turn_tokens(rest[start - 1])) <= budget:
        used += cost
        start -= 1
    return head + rest[start:] + kept


@dataclass(frozen=True)
class ContextFill:
    """What fits in a request's prompt, walking back from the newest message."""

    start: int | None  # the oldest message sent; None when every one is
    tokens: int  # the prompt's estimate, at most the budget


def context_fill(
    *, room: Room, shared: bool, before: int | None = None, used: int = 0
) -> ContextFill:
    """The room's messages (those before `before`, if given) that its next request
    sends, with the system turns and `used` tokens more (a continued reply's text).
    It walks back from the newest message and stops once the prompt's share of the
    window is full, so it reads no more than a window's worth of a long room. The
    newest message is always counted, whatever it costs."""
    budget = limits_prompt_budget(room=room)
    used += tokens_estimate_messages(messages=selectors.room_system_turns(room=room, shared=shared))
    oldest = None
    turns = selectors.room_history_turns_newest_first(room=room, shared=shared, before=before)
    for pk, turn in turns:
        cost = turn_tokens(turn)
        if oldest is not None and used + cost > budget:
            return ContextFill(start=oldest, tokens=budget)
        used += cost
        oldest = pk
    return ContextFill(start=None, tokens=min(used, budget))


# Long enough for a quiet room; a stale version's entry is never read again.
CONTEXT_START_SECONDS = 24 * 3600


def context_start(*, room: Room, shared: bool | None = None) -> int | None:
    """The oldest message the room's next request still sends, or None when it sends
    them all: the room shows where the model's memory begins. A "!" question's
    documents are not known before it is asked, so they are not counted here.

    Pass `shared` (whether the room has members) when it is known. The walk reads up
    to a window of messages, so its answer is cached under the room's version
    (Room.version moves with every change to its messages) and what else it depends
    on: every page open in a long room would otherwise pay for it. Each process
    walks once per change; author names edited since count at the next change."""
    if shared is None:
        shared = room.members.exists()
    prompt = hashlib.blake2b(room.system_prompt.encode(), digest_size=8).hexdigest()
    budget = limits_prompt_budget(room=room)
    # created_at too: a fresh database (the tests') numbers its rooms from 1 again.
    key = f"context-start:{room.pk}:{room.created_at.timestamp()}:{room.version}"
    key += f":{budget}:{shared}:{prompt}"
    cached = cache.get(key)
    if cached is not None:
        return cached[0]
    start = context_fill(room=room, shared=shared).start
    cache.set(key, (start,), CONTEXT_START_SECONDS)
    return start
