"""``python -m bench.latency LISTEN_PORT UPSTREAM_PORT DELAY``: an HTTP/1.1 proxy on 127.0.0.1 that
holds every request DELAY seconds before passing it upstream, so every answer comes that much later.

One upstream connection per client connection; requests are framed by their head and
``Content-Length`` (the benchmark's clients send no chunked bodies and do not pipeline) and
responses stream back as they come. Concurrent connections wait concurrently, as a real
API's latency would. Its own cost is measured by the suite (the curl loop through it with a
delay of 0 against nginx directly).
"""

from __future__ import annotations

import asyncio
import sys

CHUNK = 1 << 18


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, upstream: int, delay: float) -> None:
    up_r, up_w = await asyncio.open_connection("127.0.0.1", upstream)
    back = asyncio.create_task(pump(up_r, client_w))
    try:
        while True:
            head = await client_r.readuntil(b"\r\n\r\n")
            length = content_length(head)
            body = await client_r.readexactly(length) if length else b""
            await asyncio.sleep(delay)
            up_w.write(head + body)
            await up_w.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        up_w.close()
        try:
            await asyncio.wait_for(back, timeout=30)
        except (asyncio.TimeoutError, ConnectionError):
            back.cancel()
        client_w.close()


async def serve(port: int, upstream: int, delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, upstream, delay), "127.0.0.1", port, limit=1 << 20, backlog=256
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    listen, upstream_port, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    try:
        asyncio.run(serve(listen, upstream_port, seconds))
    except KeyboardInterrupt:
        pass
