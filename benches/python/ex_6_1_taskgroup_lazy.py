"""ex_6_1 without the eager factory: n trivial tasks in a TaskGroup."""

import asyncio

from showdown_common import bench, light_coro, need

need(hasattr(asyncio, "TaskGroup"), "asyncio.TaskGroup is new in Python 3.11")


async def work(n):
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(light_coro())


bench(work)
