"""ex_2_4: n times a 10 s timeout around work that suspends once."""

import asyncio

from showdown_common import bench, need

need(hasattr(asyncio, "timeout"), "asyncio.timeout is new in Python 3.11")


async def work(n):
    for _ in range(n):
        async with asyncio.timeout(10):
            await asyncio.sleep(0)


bench(work)
