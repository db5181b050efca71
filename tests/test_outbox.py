"""A tab that stops reading holds only the newest version of each message, on a real daphne."""

import asyncio
import socket
import struct

import pytest
from yarl import URL

from tests.fakeopenai import FakeOpenAI, Reply
from tests.live import (
    browser_session,
    create_room,
    frames_until,
    open_socket,
    running_stack,
    stalled_client,
)
from tests.wsutil import messages_in, reply_finished

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

# Each update carries the whole text, so this reply's updates add up to megabytes.
CHUNKS = tuple("x" * 99 + " " for _ in range(800))
TEXT = "".join(CHUNKS).strip()


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


async def test_a_stalled_tab_gets_only_the_newest_version_and_buffers_stay_small(
    tmp_path, redis_url, model_server: FakeOpenAI
):
    model_server.queue(Reply(chunks=CHUNKS, tokens_per_second=250))
    with running_stack(
        tmp_path, redis_url=redis_url, model_url=model_server.base_url, processes=1
    ) as stack:
        (server,) = stack.servers
        async with browser_session() as session:
            room_id = await create_room(session, server, "Stalled")
            jar = session.cookie_jar.filter_cookies(URL(server.http_url))
            stalled = stalled_client(
                server, room_id, "; ".join(f"{k}={v.value}" for k, v in jar.items())
            )
            tab = await open_socket(session, server, room_id)
            await tab.send_str('{"content": "a long one"}')
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
            stalled.close()
            shown = [m for f in stalled_frames for m in messages_in(f) if m.role == "assistant"]
            assert shown[-1].status == "complete" and shown[-1].text == TEXT
            assert len(shown) < len(seqs) / 2, (len(shown), len(seqs))
            # The kernel's fixed send buffer (twice CHAT_SOCKET_SEND_BUFFER, 128 KB),
            # Twisted's 64 KB and a frame or two past it; measured: 289 KB of 3.2 MB.
            assert buffered < 700_000, (buffered, sent)
