from django import template
from django.utils.safestring import SafeString, mark_safe

from chat import markdown as chat_markdown

register = template.Library()


@register.filter(is_safe=True)
def markdown(text: str) -> SafeString:
    """A model's Markdown as sanitized HTML (see chat.markdown)."""
    # Safe because nh3 cleaned it against an allow-list.
    return mark_safe(chat_markdown.render(text))
