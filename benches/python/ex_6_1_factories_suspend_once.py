"""n tasks in a TaskGroup under the eager factory, each suspending once."""

import asyncio

from showdown_common import bench, need

need(hasattr(asyncio, "eager_task_factory"), "asyncio.eager_task_factory is new in Python 3.12")


async def suspend_once():
    await asyncio.sleep(0)


async def work(n):
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(suspend_once())


bench(work)
