"""ex_6_2, second shape: n trivial tasks created first, then the tasks gathered."""

import asyncio

from showdown_common import bench, light_coro


async def work(n):
    tasks = [asyncio.create_task(light_coro()) for _ in range(n)]
    await asyncio.gather(*tasks)


bench(work)
