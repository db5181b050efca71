"""What replies cost: their token counts as the server reported them, and, with a
price table (settings.CHAT_PRICES), in US dollars. Unknown counts stay unknown:
a total never includes a guess."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.utils import timezone

from chat import metrics
from chat.budget_models import Charge, month_start
from chat.model_stream import Usage
from chat.models import Message, Room

PER = Decimal(1_000_000)  # prices are per million tokens


def price_cost(*, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """The cost of these tokens on `model`, or None when it has no price."""
    price = settings.CHAT_PRICES.get(model)
    if not isinstance(price, dict):
        return None
    try:
        prompt, completion = Decimal(str(price["prompt"])), Decimal(str(price["completion"]))
    except (KeyError, ArithmeticError, ValueError):
        return None
    return (prompt * prompt_tokens + completion * completion_tokens) / PER


def usage_count(*, model: str, counts: Usage) -> None:
    """Count the tokens the server reported for a reply or a recap in /metrics."""
    metrics.TOKENS.labels(model=model, kind="prompt").inc(counts.prompt_tokens)
    metrics.TOKENS.labels(model=model, kind="completion").inc(counts.completion_tokens)


def reply_cost(*, reply: Message) -> Decimal | None:
    if reply.prompt_tokens is None or reply.completion_tokens is None:
        return None
    return price_cost(
        model=reply.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )


@dataclass(frozen=True)
class Share:
    """What one person's questions cost the room this month (chat.budgets' charges)."""

    name: str
    tokens: int
    cost: Decimal | None  # None unless every model charged has a price


@dataclass(frozen=True)
class RoomUsage:
    replies: int  # finished replies
    unknown: int  # of which the server reported no usage
    prompt_tokens: int
    completion_tokens: int
    # None unless every counted reply's model has a price.
    cost: Decimal | None
    # This month (UTC), from the charges: each person's share, the total and the budget.
    shares: tuple[Share, ...] = ()
    month_tokens: int = 0
    month_budget: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def room_usage(*, room: Room) -> RoomUsage:
    """The room's finished replies, their tokens and (when every model has a price) cost."""
    known = Q(prompt_tokens__isnull=False, completion_tokens__isnull=False)
    rows = (
        Message.objects.filter(room=room, role=Message.Role.ASSISTANT)
        .exclude(status=Message.Status.STREAMING)
        .values("model")
        .annotate(
            replies=Count("pk"),
            known=Count("pk", filter=known),
            prompt=Sum("prompt_tokens", filter=known),
            completion=Sum("completion_tokens", filter=known),
        )
    )
    replies = unknown = prompt_total = completion_total = 0
    cost: Decimal | None = Decimal(0)
    for row in rows:
        prompt, completion = row["prompt"] or 0, row["completion"] or 0
        replies += row["replies"]
        unknown += row["replies"] - row["known"]
        prompt_total += prompt
        completion_total += completion
        if row["known"] and cost is not None:
            part = price_cost(
                model=row["model"], prompt_tokens=prompt, completion_tokens=completion
            )
            cost = None if part is None else cost + part
    shares = room_shares(room=room)
    return RoomUsage(
        replies=replies,
        unknown=unknown,
        prompt_tokens=prompt_total,
        completion_tokens=completion_total,
        cost=cost if prompt_total + completion_total else None,
        shares=shares,
        month_tokens=sum(share.tokens for share in shares),
        month_budget=room.monthly_token_budget,
    )


def room_shares(*, room: Room) -> tuple[Share, ...]:
    """Each person's share of the room's tokens this month, the largest first;
    reservations of replies in progress count until they end."""
    rows = (
        Charge.objects.filter(room=room, at__gte=month_start(timezone.now()))
        .values("user__username", "model")
        .annotate(
            tokens=Sum("tokens"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens")
        )
        .order_by()
    )
    tokens: dict[str, int] = {}
    costs: dict[str, Decimal | None] = {}
    for row in rows:
        # A deleted account's charges stay the room's.
        name = row["user__username"] or "—"
        tokens[name] = tokens.get(name, 0) + row["tokens"]
        part = price_cost(
            model=row["model"], prompt_tokens=row["prompt"], completion_tokens=row["completion"]
        )
        before = costs.get(name, Decimal(0))
        costs[name] = None if part is None or before is None else before + part
    return tuple(
        Share(name=name, tokens=total, cost=costs[name])
        for name, total in sorted(tokens.items(), key=lambda item: (-item[1], item[0]))
    )
