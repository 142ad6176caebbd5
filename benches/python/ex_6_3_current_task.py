"""ex_6_3: current_task() called n times inside one task."""

import asyncio

from showdown_common import bench


async def work(n):
    current_task = asyncio.current_task
    for _ in range(n):
        current_task()


bench(work)
