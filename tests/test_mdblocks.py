"""A streaming reply rendered block by block ends as a whole render would render it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from chat import markdown
from chat.mdblocks import BlockStream, split
from tests.test_markdown import PAYLOADS

WORDS = ["word", "세금", "퇴직금은", "`code`", "**bold**", "_em_", "~~gone~~", "<b>x</b>", "a<br>"]
WORDS += ["[link](https://ok.example)", "&amp;", "\\*", "|", "*", "1.", "#", ">", "-", "[x]"]
words = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
lines = st.one_of(
    words,
    st.sampled_from(PAYLOADS),
    words.map(lambda w: f"# {w}"),
    words.map(lambda w: f"### {w} ###"),
    st.sampled_from(["===", "---", "***", "___", "- - -", "   ---", "=", "--"]),
    words.map(lambda w: f"- {w}"),
    words.map(lambda w: f"* {w}"),
    words.map(lambda w: f"  - {w}"),
    words.map(lambda w: f"1. {w}"),
    words.map(lambda w: f"2) {w}"),
    words.map(lambda w: f"   {w}"),
    words.map(lambda w: f"> {w}"),
    words.map(lambda w: f"> > {w}"),
    words.map(lambda w: f"    {w}"),
    st.sampled_from(["```", "```python", "~~~", "````", "```js", "    ```"]),
    st.sampled_from(["| a | b |", "|---|---|", "| - |", "| 1 | 2 |", "a | b", ":-: | --"]),
    st.sampled_from(["", "", " ", "\t"]),
)
# Rarely: a reference definition, or another kind of line break.
rare = st.sampled_from(["[x]: https://ok.example", "[link]: /u 'title'", "a\r\nb", "c\rd"])
texts = st.lists(
    st.one_of(lines, lines, lines, lines, lines, lines, lines, lines, lines, rare), max_size=30
).map("\n".join)


@st.composite
def chunked(draw):
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=12)))
    return text, [*cuts, len(text)]


@settings(max_examples=600, deadline=None)
@given(chunked())
def test_finished_blocks_and_the_tail_are_a_whole_render(case):
    text, cuts = case
    stream, finished = BlockStream(), []
    for cut in cuts:
        got = stream.advance(text[:cut])
        if got.whole:
            break
        finished += got.new
        # A stream that has seen this text in pieces splits it as one that saw it at once.
        assert (finished, got.tail) == (split(text[:cut]).new, split(text[:cut]).tail)
    if got.whole:
        # Only a link reference definition stops the splitting (even one that a
        # later token undoes: "[x]: j" is one, "[x]: javascript:..." is not).
        lines = text[: text.rfind("\n", 0, cut) + 1]
        assert markdown.render_part(text[:cut])[1] or markdown.block_starts(lines) is None
        return
    assert "".join(finished) + got.tail == markdown.render(text)
    assert stream.count == len(finished)


def test_a_line_still_being_written_does_not_end_a_block():
    stream = BlockStream()
    # "***" after a paragraph is a thematic break, but only once its line is complete.
    assert stream.advance("a\n***").new == []
    assert stream.advance("a\n***x").new == []
    assert stream.advance("a\n***x\n\nb\n").new == ["<p>a\n***x</p>\n"]


def test_each_block_is_rendered_once():
    stream = BlockStream()
    # A block ends once a complete line starts the next one.
    assert stream.advance("# Title\n\nfirst para").new == []
    got = stream.advance("# Title\n\nfirst paragraph\n\n```py\nx = 1")
    assert got.new == ["<h1>Title</h1>\n", "<p>first paragraph</p>\n"]
    assert got.tail.startswith('<pre class="highlight">')
    assert stream.advance("# Title\n\nfirst paragraph\n\n```py\nx = 12").new == []
    assert stream.count == 2


def test_a_reference_definition_renders_the_reply_whole():
    stream = BlockStream()
    assert stream.advance("see [docs]\n\nmore\n").new == ["<p>see [docs]</p>\n"]
    assert stream.advance("see [docs]\n\nmore\n\n[docs]: https://ok.example").whole
    assert stream.advance("see [docs]\n\nmore\n\n[docs]: https://ok.example\n").whole
