"""ex_5_4: a hello-world HTTP/1.1 server with keep-alive, on asyncio streams.

Unlike the other programs, this one does not time itself: it serves, prints
{"port": N} once it listens, and stops when its stdin closes. The showdown
drives it with the same load generator (a tokio client on another thread,
benches/src/net.rs) that it points at the Rust servers, and times the load.
CPython's standard library has no HTTP server for asyncio, so the server is
these few lines: read a request line and headers, answer "Hello, World!".
"""

import asyncio
import json
import sys

from showdown_common import serve_args

BODY = b"Hello, World!"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


async def handle(reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # headers: a GET without a body needs none of them
            writer.write(RESPONSE)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    # Serve until the showdown closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


serve_args(main)
