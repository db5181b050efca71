"""Updates of a streaming reply as deltas: each finished block is sent once, then only
the open tail changes (chat.mdblocks splits the text).

A delta is one JSON frame for every language (it holds only the reply's HTML):

    {"delta": {"message": 12, "seq": 7, "base": 6, "start": 3,
               "blocks": ["<p>…</p>\\n"], "keep": 40, "tail": "…"}}

- "blocks" are the reply's blocks from index "start" on that the page lacks;
- the tail is the first "keep" characters (UTF-16 units, as JavaScript counts
  them) of the tail HTML the page showed at seq "base", then "tail". With
  "keep" 0 the tail is whole, and the delta applies to any older version
  holding at least "start" blocks.

A page applies a delta only if it yields the reply as it was at "seq"; else it
keeps what it shows and asks for the message ("sync"), so it never shows a text
the reply never had (static/chat/chat.js).

While a tab reads slowly, deltas for the same reply waiting for it are merged
into one (chat.layers, chat.outbox): blocks concatenated, the newest tail.
"""

import json
import math
import time
from typing import Any

from chat import mdblocks

# A tail sent whole at least this often (seconds): a page that loaded the reply
# between two deltas takes up the stream with the next whole one. A long tail
# (a growing code block) is sent whole less often: it costs more each time.
WHOLE_TAIL_EVERY = 0.5
WHOLE_LONG_TAIL_EVERY = 2.0
LONG_TAIL = 2000


def frame(*, message: int, seq: int, start: int, blocks: list[str], keep: int, tail: str) -> str:
    delta: dict[str, Any] = {"message": message, "seq": seq, "base": seq - 1, "start": start}
    delta |= {"blocks": blocks, "keep": keep, "tail": tail}
    return json.dumps({"delta": delta}, ensure_ascii=False, separators=(",", ":"))


def common_prefix(old: str, new: str) -> int:
    """How many characters (UTF-16 units) `new` shares with the start of `old`."""
    length = min(len(old), len(new))
    low, high = 0, length + 1  # old[:low] == new[:low], old[:high] != new[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if old[:middle] == new[:middle]:
            low = middle
        else:
            high = middle
    return _units(old[:low])


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _head(text: str, units: int) -> str:
    return text.encode("utf-16-le")[: 2 * units].decode("utf-16-le")


def merge(old: str, new: str) -> str:
    """One delta with the effect of `old` then `new`; `new` alone if they do not
    follow each other (the page then repairs)."""
    first: dict[str, Any] = json.loads(old)["delta"]
    second: dict[str, Any] = json.loads(new)["delta"]
    if second["base"] != first["seq"] or second["start"] != first["start"] + len(first["blocks"]):
        return new
    if second["keep"] == 0 or second["keep"] <= first["keep"]:
        keep, tail = second["keep"], second["tail"]
    else:
        keep = first["keep"]
        tail = _head(first["tail"], second["keep"] - first["keep"]) + second["tail"]
    merged = first | {"seq": second["seq"], "blocks": first["blocks"] + second["blocks"]}
    merged |= {"keep": keep, "tail": tail}
    return json.dumps({"delta": merged}, ensure_ascii=False, separators=(",", ":"))


class DeltaStream:
    """The deltas of one streaming reply, as its text grows."""

    def __init__(self, *, message_id: int) -> None:
        self.message_id = message_id
        self.blocks = mdblocks.BlockStream()
        self.tail = ""  # the tail HTML pages hold now
        self.whole_at = -math.inf

    def next(self, *, text: str, seq: int) -> tuple[str, bool] | None:
        """The delta that takes pages to `text` at `seq`, and whether it finished blocks;
        None once the reply can only be sent whole (chat.mdblocks)."""
        found = self.blocks.advance(text)
        if found.whole:
            return None
        now = time.monotonic()
        keep = common_prefix(self.tail, found.tail)
        every = WHOLE_LONG_TAIL_EVERY if len(found.tail) > LONG_TAIL else WHOLE_TAIL_EVERY
        if found.new or now - self.whole_at >= every:
            keep, self.whole_at = 0, now
        sent = found.tail[len(_head(found.tail, keep)) :]
        self.tail = found.tail
        start = self.blocks.count - len(found.new)
        delta = frame(
            message=self.message_id, seq=seq, start=start, blocks=found.new, keep=keep, tail=sent
        )
        return delta, bool(found.new)
