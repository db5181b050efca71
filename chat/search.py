"""Search over the messages of the rooms a user can see.

Korean has no spaces between a word and its particles, so matching is by
substring, not by word: SQLite's FTS5 trigram index (chat_message_fts, kept in
step by triggers) and PostgreSQL's pg_trgm index under ILIKE. Both hold final
messages only, so a streaming reply's saves never re-index its text
(migration 0009). A trigram index needs three characters; a shorter query scans
instead (on PostgreSQL too: pg_trgm cannot serve it). One Korean syllable or
Chinese character is often a whole word (세, 법), so it is a query; one ASCII
character matches nearly everything and gets a hint instead.
The query is always one literal phrase: FTS syntax, quotes and LIKE wildcards
are plain text.
"""

import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from chat.models import Message
from chat.selectors import AnyUser, room_visible

MAX_QUERY = 200
RESULTS = 30
# Characters of context on each side of the match in a snippet.
SNIPPET_CONTEXT = 60


@dataclass(frozen=True)
class SearchHit:
    message: Message
    snippet: SafeString


@dataclass(frozen=True)
class MessageSearch:
    query: str
    hits: list[SearchHit]
    # The query was too short to run.
    too_short: bool


def message_search(*, user: AnyUser, query: str, limit: int = RESULTS) -> MessageSearch:
    """The newest messages containing `query`, in rooms `user` can see."""
    query = " ".join(query.split())[:MAX_QUERY]
    if too_short(query):
        return MessageSearch(query=query, hits=[], too_short=True)
    found = (
        _matching(query)
        .filter(room__in=room_visible(user=user))
        .exclude(status=Message.Status.STREAMING)
        .select_related("room", "author")
        .order_by("-pk")[:limit]
    )
    hits = [SearchHit(message=m, snippet=snippet(m.content, query)) for m in found]
    return MessageSearch(query=query, hits=hits, too_short=False)


def too_short(query: str) -> bool:
    return not query or (len(query) == 1 and query.isascii())


def _matching(query: str) -> QuerySet[Message]:
    messages = Message.objects.all()
    if connection.vendor == "sqlite" and len(query) >= 3:
        # One FTS5 string: double quotes inside are doubled, so nothing is syntax.
        phrase = '"' + query.replace('"', '""') + '"'
        return messages.filter(
            pk__in=RawSQL("SELECT rowid FROM chat_message_fts WHERE content MATCH %s", [phrase])
        )
    if connection.vendor == "postgresql":
        # ILIKE, which the trigram index serves; Django's icontains compares
        # UPPER(content), which it cannot.
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query) + "%"
        return messages.filter(
            RawSQL('"chat_message"."content" ILIKE %s', [pattern], output_field=BooleanField())
        )
    # A substring scan.
    return messages.filter(content__icontains=query)


# Markdown emphasis and code marks, dropped from snippets (replies are Markdown).
_MARKUP = re.compile(r"\*\*|__|`")


def snippet(text: str, query: str, *, context: int = SNIPPET_CONTEXT) -> SafeString:
    """The text around the first match of `query`, escaped, the match in <mark>."""
    if not _MARKUP.search(query):
        text = _MARKUP.sub("", text)
    text = " ".join(text.split())
    at = text.lower().find(query.lower())
    if at < 0 or len(text.lower()) != len(text):
        # Case folding changed the length (rare scripts): show the start, unmarked.
        return escape(text[: 2 * context] + ("…" if len(text) > 2 * context else ""))
    start, end = max(0, at - context), min(len(text), at + len(query) + context)
    before = ("…" if start else "") + text[start:at]
    after = text[at + len(query) : end] + ("…" if end < len(text) else "")
    match = text[at : at + len(query)]
    return mark_safe(f"{escape(before)}<mark>{escape(match)}</mark>{escape(after)}")
