from decimal import Decimal

from django import template

from chat import llm, usage
from chat.models import Message, Room

register = template.Library()


@register.filter
def reply_cost(reply: Message) -> Decimal | None:
    return usage.reply_cost(reply=reply)


@register.filter
def dollars(amount: Decimal | None) -> str:
    """A cost, precise enough for a single cheap reply: $0.000123."""
    if amount is None:
        return ""
    if amount >= 1:
        return f"${amount:.2f}"
    return f"${amount:.6f}".rstrip("0").rstrip(".") if amount else "$0"


@register.filter
def offline(room: Room) -> bool:
    """No model is configured: the offline demo answers, whatever the room's model."""
    return not llm.is_configured()
