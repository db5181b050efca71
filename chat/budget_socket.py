"""The room socket's part in budgets: its user's notice that a budget ran out.

A mixin of chat.consumers.ChatConsumer; chat.budgets sends the event.
"""

from collections.abc import Awaitable, Callable
from typing import Any


class BudgetNotices:
    scope: dict[str, Any]

    # The consumer's own (an annotation only: it must not shadow it in the MRO).
    chat_message: Callable[[dict[str, Any]], Awaitable[None]]

    async def chat_budget_spent(self, event: dict[str, Any]) -> None:
        """The AI skipped a question of this socket's user: only their tabs say why."""
        if event["user_id"] == self.scope["user"].pk:
            await self.chat_message({**event, "key": None})
