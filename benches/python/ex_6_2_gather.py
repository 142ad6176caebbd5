"""ex_6_2: n trivial coroutines gathered, default (lazy) task factory."""

import asyncio

from showdown_common import bench, light_coro


async def work(n):
    await asyncio.gather(*[light_coro() for _ in range(n)])


bench(work)
