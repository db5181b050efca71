from typing import Any

from django import template

from chat import reactions

register = template.Library()


@register.filter
def for_message(found: dict[int, Any] | None, message_id: int) -> Any:
    """This message's entry in a page's reactions or feedback; None in a broadcast,
    which renders a message as nobody has reacted to it yet."""
    return (found or {}).get(message_id)


@register.simple_tag
def reaction_choices() -> tuple[str, ...]:
    return reactions.EMOJIS
