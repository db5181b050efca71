"""A slow network between the browser and daphne: a TCP proxy on loopback.

Every byte is delivered `delay` seconds after it was sent, in order, each way.
A test can also hold what the server sends (an answer that is late), cut every
connection (the network drops) and refuse new ones (still down).
"""

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from tests.servers import free_port


class SlowLink:
    def __init__(self, target_port: int, *, delay: float = 0.25) -> None:
        self.target_port, self.delay = target_port, delay
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._released = asyncio.Event()
        self._released.set()
        self._down = False

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SlowLink":
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        self._call(self._close_all(listening=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    @contextlib.contextmanager
    def holding_answers(self) -> Iterator[None]:
        """What the server sends waits until the block ends, then arrives in order."""
        self._loop.call_soon_threadsafe(self._released.clear)
        try:
            yield
        finally:
            self._loop.call_soon_threadsafe(self._released.set)

    def go_down(self) -> None:
        """Cut every connection and refuse new ones, as a dropped network would."""
        self._down = True
        self._call(self._close_all(listening=False))

    def come_back(self) -> None:
        self._down = False

    def _call(self, coroutine) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _close_all(self, *, listening: bool) -> None:
        if listening and self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a goodbye: the browser sees 1006
        self._writers.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._down:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))
        await asyncio.gather(
            self._pipe(client_r, server_w, held=False),
            self._pipe(server_r, client_w, held=True),
            return_exceptions=True,
        )
        for writer in (client_w, server_w):
            self._writers.discard(writer)
            writer.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, held: bool
    ) -> None:
        """Copy `reader` to `writer`, each chunk `delay` seconds late."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, due - loop.time()))
                if held:
                    await self._released.wait()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        delivering = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                chunks.put_nowait((loop.time() + self.delay, data))
        finally:
            chunks.put_nowait((loop.time(), b""))
            await delivering
