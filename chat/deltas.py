"""Updates of a streaming reply as deltas: each piece of its HTML is sent about once
(chat.mdblocks splits the text into finished blocks and the open tail).

A delta is one text frame for every language: a JSON header line, then the
inserted HTML as it is (JSON-escaping it cost two bytes per quote of highlighted code):

    [12,7,40,5,[120]]
    <inserted HTML>

The header is message, seq, keep, end, then, where they are not the default,
the lengths of the blocks the delta finishes ("cuts", default none), "base"
(default seq - 1) and "start". Lengths count UTF-16 units, as JavaScript does.
With T the tail the page showed at seq "base", the new HTML is
X = T[:keep] + inserted + T[len(T) - end:]; X's first parts, by the cuts, are
finished blocks and the rest is the tail. With keep and end both 0 the delta
is whole: it holds blocks "start" on and the tail, and applies to any older
version holding at least "start" blocks.

A page applies a delta only if it yields the reply as it was at "seq"; else it
keeps what it shows and asks for the message ("sync"), so it never shows a text
the reply never had (static/chat/chat.js).

While a tab reads slowly, deltas waiting for it are merged (chat.layers,
chat.outbox): into one where they compose, else kept one after the other in the
same frame, separated by NUL (never in rendered Markdown).
"""

import bisect
import functools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

from chat import mdblocks

# A page that missed a delta, or loaded the reply between two, asks for the
# message with the seq it holds, and the next delta is whole from the blocks that
# page had (chat.reply_stream): it takes up the stream from there. In case that ask was
# lost, a tail goes whole this often too (seconds); each time costs every tab the
# whole tail.
WHOLE_TAIL_EVERY = 10.0
SEPARATOR = "\x00"


@dataclass
class Delta:
    message: int
    seq: int
    keep: int
    end: int
    text: str
    cuts: list[int] = field(default_factory=list)
    base: int = -1  # seq - 1
    start: int | None = None  # known, and sent, where the delta is whole

    def __post_init__(self) -> None:
        if self.base < 0:
            self.base = self.seq - 1

    @property
    def whole(self) -> bool:
        return not self.keep and not self.end

    def frame(self) -> str:
        head: list[Any] = [self.message, self.seq, self.keep, self.end]
        rest = [self.cuts, self.base, self.start if self.whole else None]
        defaults = [[], self.seq - 1, None]
        while rest and rest[-1] == defaults[len(rest) - 1]:
            rest.pop()
        return json.dumps(head + rest, separators=(",", ":")) + "\n" + self.text


def parse(frame: str) -> list[Delta]:
    """The deltas of a frame, in the order they apply."""
    found = []
    for piece in frame.split(SEPARATOR):
        head, _, text = piece.partition("\n")
        fields = json.loads(head)
        message, seq, keep, end, cuts, base, start = fields + [[], -1, None][len(fields) - 4 :]
        found.append(Delta(message, seq, keep, end, text, cuts, base, start))
    return found


def units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _common(old: str, new: str, *, suffix: bool = False, limit: int) -> int:
    """How many characters `new` shares with the start (or end) of `old`, at most `limit`."""
    low, high = 0, limit + 1  # shared at low, not at high
    while high - low > 1:
        middle = (low + high) // 2
        same = old[-middle:] == new[-middle:] if suffix else old[:middle] == new[:middle]
        low, high = (middle, high) if same else (low, middle)
    return low


# Tabs that fell behind together hold equal frames and merge the same delta into
# them: once for all of them.
@functools.lru_cache(maxsize=256)
def merge(old: str, new: str) -> str:
    """One frame with the effect of `old` then `new`."""
    waiting, (second,) = parse(old), parse(new)
    joined = _compose(waiting[-1], second)
    if joined is None:
        return old + SEPARATOR + new
    return SEPARATOR.join(delta.frame() for delta in [*waiting[:-1], joined])


def _compose(first: Delta, second: Delta) -> Delta | None:
    """`first` then `second` as one delta, if one can say it: None when `second`
    keeps HTML that `first` kept from the page's tail between two edits."""
    if second.base != first.seq or second.whole:
        # A whole delta may resend blocks `first` finished (a page asked for them).
        return None
    inserted = first.text.encode("utf-16-le")
    length = len(inserted) // 2

    def part(start: int, stop: int) -> str:
        return inserted[2 * start : 2 * stop].decode("utf-16-le")

    kept = sum(first.cuts) + second.keep  # what second keeps, in first's HTML
    if kept <= first.keep:
        keep, before = kept, ""
    elif kept <= first.keep + length:
        keep, before = first.keep, part(0, kept - first.keep)
    else:
        return None
    if second.end <= first.end:
        end, after = second.end, ""
    elif second.end - first.end <= length:
        end, after = first.end, part(length - (second.end - first.end), length)
    else:
        return None
    start = first.start
    if start is None and second.start is not None:
        start = second.start - len(first.cuts)
    text, cuts = before + second.text + after, first.cuts + second.cuts
    return Delta(first.message, second.seq, keep, end, text, cuts, first.base, start)


class DeltaStream:
    """The deltas of one streaming reply, as its text grows."""

    def __init__(self, *, message_id: int) -> None:
        self.message_id = message_id
        self.blocks = mdblocks.BlockStream()
        self.finished: list[str] = []  # the finished blocks' HTML, kept to resend
        self.counted: tuple[list[int], list[int]] = ([], [])  # seqs, and blocks by then
        self.tail = ""  # the tail HTML pages hold now
        self.whole_at = -math.inf
        self.whole_from: int | None = None

    def whole_next(self, *, seq: int | None = None) -> None:
        """Make the next delta whole, with the blocks a page at `seq` lacks (by
        default none: the tail only)."""
        self.whole_at = -math.inf
        if seq is not None:
            seqs, counts = self.counted
            held = counts[at - 1] if (at := bisect.bisect_right(seqs, seq)) else 0
            self.whole_from = min(held, self.whole_from if self.whole_from is not None else held)

    def next(self, *, text: str, seq: int) -> str | None:
        """The delta that takes pages to `text` at `seq`; None once the reply can only
        be sent whole (chat.mdblocks)."""
        found = self.blocks.advance(text)
        if found.whole:
            return None
        self.finished += found.new
        if found.new:
            self.counted[0].append(seq)
            self.counted[1].append(self.blocks.count)
        start = self.blocks.count - len(found.new)
        if self.whole_from is not None:
            start, self.whole_from = min(start, self.whole_from), None
        blocks = self.finished[start:]
        new = "".join(blocks) + found.tail
        old, self.tail = self.tail, found.tail
        now = time.monotonic()
        if now - self.whole_at >= WHOLE_TAIL_EVERY:
            self.whole_at, keep, end = now, 0, 0
        else:
            keep = _common(old, new, limit=min(len(old), len(new)))
            end = _common(old, new, suffix=True, limit=min(len(old), len(new)) - keep)
        delta = Delta(
            message=self.message_id,
            seq=seq,
            start=start,
            keep=units(old[:keep]),
            end=units(old[len(old) - end :]),
            text=new[keep : len(new) - end],
            cuts=[units(block) for block in blocks],
        )
        return delta.frame()
