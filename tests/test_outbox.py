"""A tab that stops reading holds only the newest version of each message, on a real daphne."""

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    browser_session,
    cookie_header,
    create_room,
    frames_until,
    open_socket,
    running_stack,
    stalled_client,
)
from tests.slow import patience
from tests.wsutil import Page, is_delta, messages_in, reply_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# A link reference definition makes a reply go out whole on every update
# (chat.mdblocks), so this one's updates add up to megabytes.
CHUNKS = ("[x]: https://ok.example\n\n", *("x" * 99 + " " for _ in range(800)))
TEXT = "".join(CHUNKS[1:]).strip()
# Paragraphs: deltas, each block sent once.
PARAGRAPHS = tuple(f"{i:04} " + "y" * 94 + "\n\n" for i in range(3000))
# A stalled client cannot answer pings: past interval + timeout daphne aborts it
# with a reset, which throws away what its kernel held. These tests read that.
NO_PINGS = ("--ping-interval", "3600")


def read_frames(sock: socket.socket, within: float = 10) -> tuple[int, list[str]]:
    """Everything the server buffered for this client: total bytes, and its text frames."""
    sock.settimeout(within)
    data = bytearray()
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
            sock.settimeout(1)
    except TimeoutError:
        pass
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack_from("!H", data, at)
            at += 2
        elif length == 127:
            (length,) = struct.unpack_from("!Q", data, at)
            at += 8
        if at + length > len(data):
            break
        if opcode == 1:
            frames.append(data[at : at + length].decode())
        at += length
    return len(data), frames


@contextlib.asynccontextmanager
async def stalled_beside_a_reader(
    tmp_path, redis_url: str, model_server: FakeOpenAI
) -> AsyncIterator[tuple[aiohttp.ClientWebSocketResponse, socket.socket]]:
    """One daphne; a tab that never reads, and one that reads and has just asked."""
    with running_stack(
        tmp_path,
        redis_url=redis_url,
        model_url=model_server.base_url,
        processes=1,
        daphne_args=NO_PINGS,
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, "Stalled")
            stalled = stalled_client(server, room_id, cookie_header(session, server))
            try:
                tab = await open_socket(session, server, room_id)
                await tab.send_str('{"content": "a long one"}')
                yield tab, stalled
            finally:
                stalled.close()


@pytest.mark.slow
async def test_a_stalled_tab_gets_a_replys_deltas_merged_with_nothing_lost(
    tmp_path, redis_url, model_server: FakeOpenAI
):
    model_server.queue(Reply(chunks=PARAGRAPHS, tokens_per_second=1000))
    async with stalled_beside_a_reader(tmp_path, redis_url, model_server) as (tab, stalled):
        # The raw frames: frames_until would hand back each delta as its article.
        frames, page = [], Page()
        async with asyncio.timeout(patience(60)):
            async for message in tab:
                frames.append(message.data)
                if reply_finished(page.feed(message.data)):
                    break
        await asyncio.sleep(0.5)
        _buffered, stalled_frames = await asyncio.to_thread(read_frames, stalled)

    deltas, waited = [f for f in frames if is_delta(f)], [f for f in stalled_frames if is_delta(f)]
    # What waited past the buffers was merged.
    assert len(waited) < len(deltas), (len(waited), len(deltas))
    # Each delta the stalled tab got, merged or not, follows the one before it: its
    # page shows every version it was sent, and ends with the whole reply.
    page = Page()
    for frame in stalled_frames:
        assert page.feed(frame), frame[:300]
    (reply,) = [m for m in page.shown.values() if m.role == "assistant"]
    assert reply.status == "complete"
    assert reply.text == "".join(PARAGRAPHS).strip().replace("\n\n", "\n")


async def test_a_stalled_tab_gets_only_the_newest_version_and_buffers_stay_small(
    tmp_path, redis_url, model_server: FakeOpenAI
):
    model_server.queue(Reply(chunks=CHUNKS, tokens_per_second=250))
    async with stalled_beside_a_reader(tmp_path, redis_url, model_server) as (tab, stalled):
        frames = await frames_until(tab, reply_finished, within=60)

        # The tab that reads got every version, in order, megabytes of them.
        sent = sum(len(f.encode()) for f in frames)
        seqs = [m.seq for f in frames for m in messages_in(f) if m.role == "assistant"]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert messages_in(frames[-1])[-1].text == TEXT
        assert sent > 3_000_000, sent

        # The stalled one, reading at last, finds a small part of that: what the
        # kernel and Twisted held when the outbox paused, then the newest version.
        await asyncio.sleep(0.5)
        buffered, stalled_frames = await asyncio.to_thread(read_frames, stalled)
        shown = [m for f in stalled_frames for m in messages_in(f) if m.role == "assistant"]
        assert shown[-1].status == "complete" and shown[-1].text == TEXT
        assert len(shown) < len(seqs) / 2, (len(shown), len(seqs))
        # The kernel's fixed send buffer (twice CHAT_SOCKET_SEND_BUFFER, 128 KB),
        # Twisted's 64 KB and a frame or two past it; measured: 289 KB of 3.2 MB.
        assert buffered < 700_000, (buffered, sent)
