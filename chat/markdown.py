"""Assistant replies as HTML: CommonMark, code highlighted on the server, then sanitized.

Model output is untrusted: it can repeat whatever a prompt injected. So raw
HTML is off in the parser, and nh3 cleans the result against an allow-list
anyway, so no script, event handler, javascript: URL or remote image reaches
the page whatever the model writes.

The parser, formatter and sanitizer are built once here. A streaming reply
is rendered block by block (chat.mdblocks), with the helpers at the end.
"""

import re
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# Scopes static/chat/pygments.css (`manage.py pygments_css` writes it).
HIGHLIGHT_CLASS = "highlight"

_formatter = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=64)
def _lexer(language: str) -> Lexer | None:
    try:
        return get_lexer_by_name(language)
    except ClassNotFound:
        return None


def _highlight_fence(code: str, language: str, _attrs: str) -> str:
    return _highlight(code, language.lower())


# While a reply streams, its finished code blocks come back unchanged on every
# render; only the growing one is highlighted again.
@lru_cache(maxsize=256)
def _highlight(code: str, language: str) -> str:
    lexer = _lexer(language) if language else None
    body = highlight(code, lexer, _formatter) if lexer else nh3.escape(code)
    return f'<pre class="{HIGHLIGHT_CLASS}"><code>{body}</code></pre>'


_parser = (
    MarkdownIt("commonmark", {"html": False, "highlight": _highlight_fence})
    # Models write tables and strikethrough often enough to be worth it.
    .enable(["table", "strikethrough"])
    # Images would load remote URLs the model chose: a way to leak the
    # conversation through a query string. The text stays as a plain link.
    .disable("image")
)

_cleaner = nh3.Cleaner(
    tags={
        *("p", "br", "hr", "blockquote", "pre", "code", "span", "a"),
        *("h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s"),
        *("ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"),
    },
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    allowed_classes={
        "pre": {HIGHLIGHT_CLASS},
        "span": {name for name in STANDARD_TYPES.values() if name},
    },
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    # A link in a reply must not take the reader out of the live room.
    set_tag_attribute_values={"a": {"target": "_blank"}},
)


_LINE_BREAK = re.compile(r"\r\n?|\n")


# A fragment rendered in several languages (rendering.in_every_language) holds
# the same body in each, so it is converted once.
@lru_cache(maxsize=16)
def render(text: str) -> str:
    """Safe HTML for a model's Markdown `text`."""
    return _cleaner.clean(_parser.render(text))


def render_part(text: str) -> tuple[str, bool]:
    """`render(text)` uncached (a streaming tail changes on every update), and whether
    `text` defines a link reference, which can change how links elsewhere render."""
    env: dict = {}
    tokens = _parser.parse(text, env)
    html = _parser.renderer.render(tokens, _parser.options, env)
    return _cleaner.clean(html), bool(env.get("references"))


def block_starts(text: str) -> list[int] | None:
    """Where each top-level block of `text` starts, as offsets into it (the first is
    0); None if `text` defines a link reference."""
    env: dict = {}
    tokens = _parser.parse(text, env)
    if env.get("references"):
        return None
    # markdown-it's own line breaks (str.splitlines knows more).
    lines = [0, *(found.end() for found in _LINE_BREAK.finditer(text))]
    firsts = [t.map[0] for t in tokens if t.level == 0 and t.map and t.nesting >= 0]
    return [0, *(lines[first] for first in firsts[1:])]
