"""Why an action on a turn was refused. Nothing changed; the message says why, in the
reader's language (the consumer shows it as a notice on the sender's socket only)."""

import math
from typing import Any

from django.conf import settings
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from chat import budgets


class Refused(Exception):
    message: Any = ""

    def __init__(self, message: Promise | str | None = None, **params: object) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        self.params = params

    def text(self) -> str:
        """The reason in the active language."""
        return str(self.message % self.params if self.params else self.message)


class RoomBusy(Refused):
    message = _("Wait for the current reply to finish, then try again.")


class ServerRestarting(Refused):
    message = _("The server is restarting; try again in a moment.")


class RateLimited(Refused):
    message = _("You are sending messages too fast. Try again in %(seconds)d seconds.")

    def __init__(self, retry_after: float) -> None:
        super().__init__(seconds=math.ceil(retry_after))
        self.retry_after = retry_after


class QueueFull(Refused):
    def __init__(self) -> None:
        limit = settings.CHAT_QUEUE_LIMIT
        super().__init__(
            ngettext_lazy(
                "%(count)d question is already waiting for the AI. Send yours once it is answered.",
                "%(count)d questions are already waiting for the AI. "
                "Send yours when one is answered.",
                "count",
            ),
            count=limit,
        )


class NothingToRegenerate(Refused):
    message = _("There is no reply to regenerate.")


class NothingToContinue(Refused):
    message = _(
        "Only the room's last reply can be continued, once interrupted, stopped "
        "or cut at the length limit."
    )


class EditRefused(Refused):
    message = _("Only the room's last message can be edited.")


class NotYourMessage(EditRefused):
    message = _("You can edit only your own messages.")


class BusyEditing(RoomBusy):
    message = _("Wait for the current reply to finish, then edit.")


class NotStreaming(Refused):
    message = _("That reply is not being written any more.")


class NotQueued(Refused):
    message = _("That question is not waiting any more.")


class BudgetSpent(Refused):
    """Regenerate, Continue or Edit, when the reply's reservation does not fit a budget."""

    def __init__(self, spent: budgets.Spent, *, own: bool) -> None:
        super().__init__()
        self.spent, self.own = spent, own

    def text(self) -> str:
        return self.spent.text(own=self.own)
