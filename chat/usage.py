"""What replies cost: their token counts as the server reported them, and, with a
price table (settings.CHAT_PRICES), in US dollars. Unknown counts stay unknown:
a total never includes a guess."""

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum

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


def reply_cost(*, reply: Message) -> Decimal | None:
    if reply.prompt_tokens is None or reply.completion_tokens is None:
        return None
    return price_cost(
        model=reply.model,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
    )


@dataclass(frozen=True)
class RoomUsage:
    replies: int  # finished replies
    unknown: int  # of which the server reported no usage
    prompt_tokens: int
    completion_tokens: int
    # None unless every counted reply's model has a price.
    cost: Decimal | None

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
    return RoomUsage(
        replies=replies,
        unknown=unknown,
        prompt_tokens=prompt_total,
        completion_tokens=completion_total,
        cost=cost if prompt_total + completion_total else None,
    )
