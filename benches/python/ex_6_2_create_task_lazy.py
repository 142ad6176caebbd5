"""n trivial tasks created one by one with create_task, then each awaited."""

import asyncio

from showdown_common import bench, light_coro


async def work(n):
    tasks = [asyncio.create_task(light_coro()) for _ in range(n)]
    for t in tasks:
        await t


bench(work)
