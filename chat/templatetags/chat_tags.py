import re

from django import template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from chat import llm, mdblocks, mentions, rendering
from chat import markdown as chat_markdown
from chat.mdblocks import Blocks
from chat.models import Message

register = template.Library()


@register.filter(is_safe=True)
def markdown(text: str) -> SafeString:
    """A model's Markdown as sanitized HTML (see chat.markdown)."""
    # Safe because nh3 cleaned it against an allow-list.
    return mark_safe(chat_markdown.render(text))


@register.filter
def person_text(message: Message) -> SafeString:
    """A person's message: escaped text, its line breaks, and its mentions (chat.mentions)."""
    return mentions.mention_html(message=message)


@register.filter
def stream_parts(message: Message) -> Blocks | None:
    """A streaming reply's finished blocks and tail as safe HTML (chat.mdblocks); None
    for any other message, which renders whole."""
    if not message.is_streaming or message.role != Message.Role.ASSISTANT:
        return None
    parts = mdblocks.split(message.content)
    # Safe because nh3 cleaned each part against an allow-list.
    return Blocks(new=[mark_safe(block) for block in parts.new], tail=mark_safe(parts.tail))


def _filled_in(msgid: str) -> re.Pattern[str]:
    """What `msgid % values` looks like: its %(name)s placeholders become groups."""
    # Split on a group: literal text at even indexes, placeholder names at odd ones.
    parts = re.split(r"%\((\w+)\)[sd]", msgid)
    return re.compile(
        "".join(f"(?P<{part}>.+?)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
    )


_WITH_VALUES = [(msgid, _filled_in(msgid)) for msgid in (llm.HTTP_STATUS_ERROR,)]


@register.filter
def reply_error(text: str) -> str:
    """A reply's saved error in the reader's language.

    Errors are saved in English (chat.llm, chat.services), so the text is its
    own msgid, or one with values filled in that this finds again.
    """
    if not text:
        return text
    translated = gettext(text)
    if translated != text:
        return translated
    for msgid, pattern in _WITH_VALUES:
        if match := pattern.fullmatch(text):
            return gettext(msgid) % match.groupdict()
    return text


@register.simple_tag(takes_context=True)
def label(context: template.Context, name: str, **values: object) -> str:
    """One of the words around a message (rendering.MESSAGE_LABELS) in the active language,
    or, in a broadcast rendered once for every language, a marker each language fills in."""
    if context.get("render_once"):
        # Every marker is replaced, and its text escaped, before the fragment is sent.
        return mark_safe(rendering.label_marker(name, values))
    return rendering.label_text(name, values)
