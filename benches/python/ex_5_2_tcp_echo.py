"""ex_5_2 / ex_5_3: 64-byte messages echoed over 100 loopback connections,
server and clients on one loop (about n / 10 messages)."""

import asyncio

from showdown_common import bench

CONNS = 100
MSG = 64


def ops(n):
    return max(-(-(n // 10) // CONNS), 1) * CONNS


async def echo(reader, writer):
    try:
        while True:
            data = await reader.readexactly(MSG)
            writer.write(data)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def work(n):
    per = ops(n) // CONNS
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        msg = b"\x07" * MSG
        for _ in range(per):
            writer.write(msg)
            await writer.drain()
            await reader.readexactly(MSG)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*[client() for _ in range(CONNS)])
    server.close()
    await server.wait_closed()


bench(work, ops)
