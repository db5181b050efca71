"""A streaming reply's Markdown, split into finished blocks and the open tail.

Each update of a streaming reply would otherwise render and send the whole
text again, which costs O(n²) over a reply. Here a reply keeps an offset into
its text up to which every block is finished: markdown-it parses only what
follows it, and every top-level block but the last is finished, because
another block follows it (markdown-it decides, so setext headings, loose
lists, lazy blockquote lines and indented code come out as a whole render
would). A finished block is rendered once; only the tail is rendered again.

Two rules keep the pieces equal to a whole render (tests/test_mdblocks.py):
- only complete lines decide where a block ends: "a\\n***" is a paragraph and
  a thematic break, but "a\\n***x" is one paragraph;
- a link reference definition ("[x]: /url") changes links anywhere in the
  text, before or after it, so a reply with one is rendered whole from then on.
"""

import itertools
from dataclasses import dataclass, field

from chat import markdown


@dataclass
class Blocks:
    """What `BlockStream.advance` found: blocks finished since its last call, and the
    tail rendered. `whole` means the text can no longer be split (see above)."""

    new: list[str] = field(default_factory=list)
    tail: str = ""
    whole: bool = False


class BlockStream:
    """The finished blocks of a growing text, each rendered once."""

    def __init__(self) -> None:
        self.offset = 0  # where the text's unfinished part starts
        self.count = 0  # blocks finished so far
        self.whole = False

    def advance(self, text: str) -> Blocks:
        """The blocks `text` (the previous text, grown) finished, and its tail."""
        if self.whole:
            return Blocks(whole=True)
        new: list[str] = []
        cut = text.rfind("\n", self.offset) + 1
        if cut > self.offset:
            starts = markdown.block_starts(text[self.offset : cut])
            if starts is None:
                self.whole = True
                return Blocks(whole=True)
            for start, end in itertools.pairwise(starts):
                html, _refs = markdown.render_part(text[self.offset + start : self.offset + end])
                new.append(html)
            self.offset += starts[-1]
            self.count += len(new)
        tail, refs = markdown.render_part(text[self.offset :])
        if refs:
            self.whole = True
            return Blocks(whole=True)
        return Blocks(new=new, tail=tail)


def split(text: str) -> Blocks:
    """`text`'s finished blocks and tail, as a stream that received it at once has them;
    a text that cannot be split is all tail."""
    found = BlockStream().advance(text)
    return Blocks(tail=markdown.render(text), whole=True) if found.whole else found
