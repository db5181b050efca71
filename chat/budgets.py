"""Token budgets, held at every claim of a turn.

Three budgets: the asker's daily and monthly (CHAT_USER_TOKENS_PER_DAY and
CHAT_USER_TOKENS_PER_MONTH, or their UserBudget) and the room's monthly
(Room.monthly_token_budget); days and months are UTC's. Each reply is charged to
the person whose question it answers, in the Charge ledger.

The claim that starts a reply (chat.turns.claims) calls `charge_reserve` in its
own transaction: it locks the asker's UserBudget row (the claim holds the room's
row already), so two processes cannot both let the last question through, and
reserves the estimated prompt plus the reply ceiling. `charge_settle` replaces
the reservation, when the reply ends, with the tokens the server reported, or
the estimate when it reported none. A reservation that does not fit raises
Spent: a new question is then saved and shown, marked skipped
(`question_skip`), and its asker's tabs are told which budget ran out and when
it renews.

A recap (Catch me up, chat.recaps) is model spend too: `recap_reserve` and
`recap_settle` charge it the same way, to its asker and its room; one that does
not fit is refused with the same notice.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from chat import limits, llm, metrics, rendering
from chat.broadcast import after_commit, fragment_event, group_send_sync, room_group
from chat.budget_models import Charge, UserBudget, day_start, month_start
from chat.model_stream import Usage
from chat.models import Message, Room
from chat.tokens import tokens_estimate

DAY, MONTH, ROOM = "day", "month", "room"
# The most a budget may be, as for the settings (config.settings._tokens).
BUDGET_MAX = 10**12

# Why the AI cannot answer, to the person told: the asker ("own") or someone
# else pressing Regenerate or Continue on the asker's question.
_SPENT = {
    (DAY, True): _(
        "The AI cannot answer: your daily token budget has %(left)s tokens left, and a "
        "reply may need %(needed)s. It renews at %(when)s."
    ),
    (MONTH, True): _(
        "The AI cannot answer: your monthly token budget has %(left)s tokens left, and a "
        "reply may need %(needed)s. It renews at %(when)s."
    ),
    (DAY, False): _(
        "The AI cannot answer: the asker's daily token budget has %(left)s tokens left, and "
        "a reply may need %(needed)s. It renews at %(when)s."
    ),
    (MONTH, False): _(
        "The AI cannot answer: the asker's monthly token budget has %(left)s tokens left, "
        "and a reply may need %(needed)s. It renews at %(when)s."
    ),
    (ROOM, True): _(
        "The AI cannot answer: this room's monthly token budget has %(left)s tokens left, "
        "and a reply may need %(needed)s. It renews at %(when)s."
    ),
}


class Spent(Exception):
    """A reply's reservation does not fit in one of the budgets; nothing was reserved."""

    def __init__(
        self, *, budget: str, left: int, needed: int, renews: datetime, asker_id: int | None
    ) -> None:
        super().__init__(budget)
        self.budget, self.left, self.needed = budget, left, needed
        self.renews, self.asker_id = renews, asker_id

    def text(self, *, own: bool = True) -> str:
        """Which budget ran out and when it renews, in the active language."""
        message = _SPENT[(self.budget, own or self.budget == ROOM)]
        return str(message) % {
            "left": f"{self.left:,}",
            "needed": f"{self.needed:,}",
            "when": self.renews.strftime("%Y-%m-%d %H:%M UTC"),
        }


def renews_at(*, budget: str, now: datetime) -> datetime:
    """When the budget's period (its day, or its month) ends."""
    if budget == DAY:
        return day_start(now) + timedelta(days=1)
    return (month_start(now) + timedelta(days=32)).replace(day=1)


def user_limits(*, budget: UserBudget | None) -> dict[str, int | None]:
    """The user's daily and monthly budgets: their own, else the settings'; None is unlimited."""
    if budget is not None and budget.unlimited:
        return {DAY: None, MONTH: None}
    own_day = budget.tokens_per_day if budget is not None else None
    own_month = budget.tokens_per_month if budget is not None else None
    return {
        DAY: settings.CHAT_USER_TOKENS_PER_DAY if own_day is None else own_day,
        MONTH: settings.CHAT_USER_TOKENS_PER_MONTH if own_month is None else own_month,
    }


def tokens_spent(*, charges: "QuerySet[Charge]", since: datetime) -> int:
    """Tokens these charges hold since `since`, reservations included."""
    return charges.filter(at__gte=since).aggregate(total=Sum("tokens"))["total"] or 0


def budget_check(*, room: Room, user_id: int | None, needed: int, now: datetime) -> None:
    """Raise Spent unless `needed` tokens fit in the user's budgets and the room's.

    Call it in the claim's transaction: it locks the user's budget row until the commit.
    """
    weighed: list[tuple[str, int, QuerySet[Charge]]] = []
    if user_id is not None:
        # Found or made, the row is this transaction's until it commits.
        own, _ = UserBudget.objects.select_for_update().get_or_create(user_id=user_id)
        for budget, limit in user_limits(budget=own).items():
            if limit is not None:
                weighed.append((budget, limit, Charge.objects.filter(user_id=user_id)))
    if room.monthly_token_budget is not None:
        weighed.append((ROOM, room.monthly_token_budget, Charge.objects.filter(room=room)))
    for budget, limit, charges in weighed:
        start = day_start(now) if budget == DAY else month_start(now)
        spent = tokens_spent(charges=charges, since=start)
        if spent + needed > limit:
            renews = renews_at(budget=budget, now=now)
            raise Spent(
                budget=budget,
                left=max(limit - spent, 0),
                needed=needed,
                renews=renews,
                asker_id=user_id,
            )


def prompt_estimate(*, room: Room, reply: Message) -> int:
    """The tokens the model will be sent for `reply`: the conversation before it, and
    the text it already has when it is continued; at most the prompt's share of the
    window (chat.limits.context_fill)."""
    used = 0
    if reply.content:
        used = limits.turn_tokens({"role": "assistant", "content": reply.content})
    shared = room.members.exists()
    return limits.context_fill(room=room, shared=shared, before=reply.pk, used=used).tokens


def question_of(*, reply: Message) -> Message | None:
    """The user message a reply answers: the last one before it that is not queued."""
    return (
        Message.objects.filter(room_id=reply.room_id, pk__lt=reply.pk, role=Message.Role.USER)
        .exclude(status=Message.Status.QUEUED)
        .order_by("pk")
        .last()
    )


def charge_reserve(*, room: Room, reply: Message, asker_id: int | None) -> Charge:
    """Reserve what `reply` may cost, charged to `asker_id`, or raise Spent (counted
    in /metrics). In the transaction that claims the reply."""
    prompt = prompt_estimate(room=room, reply=reply)
    return _reserve(
        room=room,
        user_id=asker_id,
        prompt=prompt,
        reply_id=reply.pk,
        text_before=len(reply.content),
    )


def recap_reserve(*, room: Room, user_id: int, prompt: int) -> Charge:
    """Reserve what a recap of `prompt` tokens may cost, or raise Spent (counted in
    /metrics). It is charged to its asker, and to the room: the model's spend there,
    like its replies'."""
    with transaction.atomic():
        return _reserve(room=room, user_id=user_id, prompt=prompt, kind=Charge.Kind.RECAP)


def _reserve(*, room: Room, user_id: int | None, prompt: int, **fields: object) -> Charge:
    now = timezone.now()
    ceiling = limits.limits_reply_ceiling(room=room)
    try:
        budget_check(room=room, user_id=user_id, needed=prompt + ceiling, now=now)
    except Spent as spent:
        metrics.BUDGET_REFUSALS.labels(budget=spent.budget).inc()
        raise
    return Charge.objects.create(
        user_id=user_id,
        room=room,
        model=llm.model_name(model=room.model),
        prompt_tokens=prompt,
        completion_tokens=ceiling,
        tokens=prompt + ceiling,
        at=now,
        **fields,
    )


def charge_settle(*, reply: Message) -> None:
    """Replace the reply's reservation with what it spent: the server's counts, else
    the estimated prompt and the estimate of the text it received. A reply that got
    neither text nor counts is charged nothing: the model may never have been asked."""
    charge = Charge.objects.filter(reply_id=reply.pk, settled=False).order_by("pk").last()
    if charge is None:
        return
    counts = None
    if reply.prompt_tokens is not None and reply.completion_tokens is not None:
        counts = (reply.prompt_tokens, reply.completion_tokens)
    new_text = reply.content[charge.text_before :]
    _settle(charge=charge, model=reply.model or charge.model, counts=counts, new_text=new_text)


def recap_settle(*, charge: Charge, usage: Usage | None, text: str) -> None:
    """Replace a recap's reservation with what it spent, as charge_settle does a reply's."""
    counts = (usage.prompt_tokens, usage.completion_tokens) if usage else None
    _settle(charge=charge, model=charge.model, counts=counts, new_text=text)


def _settle(*, charge: Charge, model: str, counts: tuple[int, int] | None, new_text: str) -> None:
    if counts is not None:
        (prompt, completion), estimated = counts, False
    elif new_text:
        prompt, completion, estimated = charge.prompt_tokens, tokens_estimate(text=new_text), True
    else:
        prompt, completion, estimated = 0, 0, True
    Charge.objects.filter(pk=charge.pk, settled=False).update(
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        tokens=prompt + completion,
        settled=True,
        estimated=estimated,
    )


def question_skip(*, question: Message, spent: Spent) -> None:
    """The AI skips this question: it is marked, for every tab, and once the
    transaction commits its asker's tabs of the room are told why."""
    question.skipped_for = spent.budget
    Message.objects.filter(pk=question.pk).update(skipped_for=spent.budget)
    if spent.asker_id is None:
        return
    html = rendering.in_every_language(_notice, spent=spent)
    event = fragment_event("chat.budget_spent", html, user_id=spent.asker_id)
    after_commit(group_send_sync, group=room_group(question.room_id), event=event)


def _notice(*, spent: Spent) -> str:
    return render_to_string(
        f"{rendering.ROOM_TEMPLATE}#budget_notice", {"text": spent.text(), "oob": True}
    )


def room_budget_set(*, room: Room, tokens: int | None) -> Room:
    """Set the room's monthly token budget (None: no budget); the next claim weighs it."""
    with transaction.atomic():
        Room.objects.filter(pk=room.pk).update(
            monthly_token_budget=tokens, updated_at=timezone.now()
        )
        room.monthly_token_budget = tokens
    return room
