"""The replies the benchmark's model streams, cut into chunks, with markers that
say how far a tab's text has got.

numbered     'w0', ' w1', ' w2'...: every chunk is its own marker (S1-S7).
ordinary     about 1.8 KB of plain English in 150 chunks of a word or two, as a
             chat answer reads (S2-words).
markdown-en  about 12 KB of English Markdown: headings, paragraphs, lists and
             Python code blocks, in word-sized chunks (S8-en).
markdown-ko  the same in Korean, in chunks of one or two syllables (S8-ko).

In the text replies, every few chunks of prose is a marker chunk, ' zq<i>'
where i is that chunk's own index: a plain word that survives Markdown,
Pygments and nh3, so a tab finds it in whole fragments and in deltas alike.
Code blocks carry none. Everything is generated, so runs repeat exactly.
"""

import re
from functools import cache
from itertools import cycle

MARKER_EVERY = 6  # prose chunks between markers

_EN_PROSE = (
    "The event loop runs one task at a time, and a task gives way only where it awaits.",
    "A blocking call inside a coroutine therefore stalls every other connection of the process.",
    "Move slow work to a thread with asyncio.to_thread, or use a library that speaks async.",
    "Timeouts belong around every network call, because a peer that never answers costs memory.",
    "Backpressure matters as much as speed: a fast producer can fill a slow consumer's buffer.",
    "Measure before you optimise, since the profile rarely blames the part you suspected.",
    "Keep the critical section small, and release locks before you call out to the network.",
    "Cancellation is cooperative, so clean up in a finally block and re-raise CancelledError.",
)
_EN_ITEMS = (
    "Use `asyncio.gather` for independent requests that may run at the same time.",
    "Bound concurrency with a semaphore so a burst does not open a thousand sockets.",
    "Prefer queues between stages; they make the pace of each stage visible.",
    "Log the time each stage takes, not only the errors it raises.",
)
_KO_PROSE = (
    "이벤트 루프는 한 번에 하나의 작업만 실행하며, 작업은 await 하는 곳에서만 양보합니다.",
    "따라서 코루틴 안에서 블로킹 호출을 하면 같은 프로세스의 다른 연결이 모두 멈춥니다.",
    "느린 작업은 스레드로 넘기거나, 비동기를 지원하는 라이브러리를 사용하는 것이 좋습니다.",
    "응답하지 않는 상대는 메모리를 계속 차지하므로 모든 네트워크 호출에는 시간 제한이 필요합니다.",
    "속도만큼 배압도 중요합니다. 빠른 생산자는 느린 소비자의 버퍼를 금방 채웁니다.",
    "최적화하기 전에 먼저 측정하세요. 프로파일은 의심했던 부분을 좀처럼 가리키지 않습니다.",
    "임계 구역은 작게 유지하고, 네트워크를 호출하기 전에 잠금을 풀어야 합니다.",
    "취소는 협조적으로 이루어지므로 finally 블록에서 정리하고 예외를 다시 발생시키세요.",
)
_KO_ITEMS = (
    "서로 독립적인 요청은 `asyncio.gather` 로 동시에 보냅니다.",
    "세마포어로 동시 실행 수를 제한해 소켓이 한꺼번에 열리지 않게 합니다.",
    "단계 사이에는 큐를 두어 각 단계의 속도가 드러나게 합니다.",
    "오류만이 아니라 각 단계에 걸린 시간도 기록합니다.",
)
_CODE = '''```python
import asyncio


async def fetch_all(client, urls, *, limit={n}):
    """Fetch every URL, at most {n} at a time, each within ten seconds."""
    gate = asyncio.Semaphore(limit)

    async def one(url):
        async with gate:
            async with asyncio.timeout(10):
                response = await client.get(url)
                return url, response.status_code

    return dict(await asyncio.gather(*(one(url) for url in urls)))
```'''


def _document(language: str, size: int) -> str:
    """Markdown sections until the text reaches `size` bytes of UTF-8."""
    prose, items = (_KO_PROSE, _KO_ITEMS) if language == "ko" else (_EN_PROSE, _EN_ITEMS)
    heading = "단계" if language == "ko" else "Step"
    sentences, bullets = cycle(prose), cycle(items)
    parts: list[str] = []
    section = 0
    while len("\n\n".join(parts).encode()) < size:
        section += 1
        parts.append(f"## {heading} {section}")
        parts.append(" ".join(next(sentences) for _ in range(3)))
        parts.append("\n".join(f"- {next(bullets)}" for _ in range(3)))
        parts.append(" ".join(next(sentences) for _ in range(2)))
        parts.append(_CODE.replace("{n}", str(section + 3)))
    return "\n\n".join(parts) + "\n"


def _pieces(text: str, *, korean: bool) -> list[str]:
    """Word-sized chunks, whitespace attached in front, as a model streams them."""
    pieces = []
    for word in re.findall(r"\s*\S+", text):
        # A Korean model token is a syllable or two; an English one a word or part of one.
        step = 2 if korean and re.search(r"[가-힣]", word) else 7
        lead = len(word) - len(word.lstrip())
        first = lead + step
        pieces.append(word[:first])
        pieces += [word[i : i + step] for i in range(first, len(word), step)]
    return pieces


def _with_markers(pieces: list[str]) -> tuple[str, ...]:
    """The pieces, with a marker chunk after every MARKER_EVERY pieces of prose."""
    chunks: list[str] = []
    in_code, since = False, 0
    for piece, after in zip(pieces, [*pieces[1:], "\n"], strict=True):
        chunks.append(piece)
        if piece.lstrip().startswith("```"):
            in_code = not in_code
        since += not in_code
        # Between two words of prose on one line (at a line's start it could
        # become a heading, inside a word it would split it).
        if not in_code and since >= MARKER_EVERY and after[:1] == " " and "`" not in piece:
            chunks.append(f" zq{len(chunks)}")
            since = 0
    return tuple(chunks)


def _ordinary() -> tuple[str, ...]:
    words = re.findall(r"\S+", " ".join(_EN_PROSE * 3))
    pairs = [" ".join(words[i : i + 2]) for i in range(0, len(words), 2)]
    pieces = [("" if i == 0 else " ") + pair for i, pair in enumerate(pairs)]
    chunks: list[str] = []
    for piece in pieces:
        if len(chunks) >= 150:
            break
        chunks.append(piece)
        if len(chunks) % 5 == 4:
            chunks.append(f" zq{len(chunks)}")
    return tuple(chunks[:150])


@cache
def reply_chunks(kind: str, tokens: int = 0) -> tuple[str, ...]:
    """The chunks of a reply of this kind (`tokens` only sizes a numbered one)."""
    if kind == "numbered":
        return tuple(f"{' ' if i else ''}w{i}" for i in range(tokens))
    if kind == "ordinary":
        return _ordinary()
    if kind in ("markdown-en", "markdown-ko"):
        korean = kind == "markdown-ko"
        return _with_markers(_pieces(_document(kind[-2:], 11_000), korean=korean))
    raise ValueError(f"unknown reply kind: {kind}")


def marker_prefix(kind: str) -> str:
    return "w" if kind == "numbered" else "zq"


def marker_indices(kind: str, tokens: int = 0) -> list[int]:
    """The chunks whose arrival a tab can see: every one, or the marker chunks."""
    chunks = reply_chunks(kind, tokens)
    if kind == "numbered":
        return list(range(len(chunks)))
    return [i for i, chunk in enumerate(chunks) if chunk == f" zq{i}"]
