"""The offline demo model: what answers when no model server is configured.

It behaves as a real model would where a newcomer can see it: it quotes the
question as its author wrote it (never the author line of a shared room, never
an instruction sent by the server), and Continue carries a cut-off reply on
where it stopped instead of starting a new one.
"""

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

DEMO_MODEL_NAME = "offline-demo"
DELAY = 0.03  # seconds between demo words: slow enough to watch it stream

# How the server's instruction to continue a cut-off reply begins (chat/replies.py,
# CONTINUE_PROMPT); people's messages never reach the model in that position after
# an assistant turn, and the demo must not quote it back.
_CONTINUE_START = "Your reply above was cut off."
_WORD = re.compile(r"\s*\S+")
# The line naming a shared room's author (chat.selectors.room_history).
_AUTHOR_LINE = re.compile(r'\A\[author: "(?:[^"\\\n]|\\.)*"\]\n')


async def demo_reply(turns: Sequence[dict[str, str]]) -> AsyncGenerator[str]:
    """The demo's reply to `turns`, a word at a time."""
    for word in _WORD.findall(demo_text(turns)):
        await asyncio.sleep(DELAY)
        yield word


def demo_text(turns: Sequence[dict[str, str]]) -> str:
    people = [t for t in turns if t["role"] == "user"]
    last = turns[-1] if turns else None
    if last and last["role"] == "user" and last["content"].startswith(_CONTINUE_START):
        return _continuation(turns)
    question = people[-1]["content"] if people else ""
    return _answer(_AUTHOR_LINE.sub("", question))


def _answer(question: str) -> str:
    return _(
        "**Offline demo model.** No model is configured, so this is a fixed reply. "
        "You wrote %(count)d characters: “%(excerpt)s”.\n\n"
        "To talk to a real model, set `OPENAI_API_KEY` (and optionally `OPENAI_MODEL`), "
        "or point `OPENAI_BASE_URL` at any OpenAI-compatible server such as Ollama, "
        "then restart the server."
    ) % {"count": len(question), "excerpt": question[:80]}


def _continuation(turns: Sequence[dict[str, str]]) -> str:
    """The rest of the cut-off reply (the turn before the instruction), in whichever
    language it was written; past its end, one more sentence after a space."""
    kept = turns[-2]["content"] if len(turns) >= 2 else ""
    questions = [t["content"] for t in turns[:-2] if t["role"] == "user"]
    question = _AUTHOR_LINE.sub("", questions[-1]) if questions else ""
    for code, _name in settings.LANGUAGES:
        with translation.override(code):
            full = _answer(question)
        if kept and full.startswith(kept) and len(full) > len(kept):
            return full[len(kept) :]
    space = "" if not kept or kept[-1].isspace() else " "
    return space + _("That is all the offline demo model has to say.")
