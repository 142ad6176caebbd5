"""ex_6_1: n trivial tasks in a TaskGroup under the eager task factory."""

import asyncio

from showdown_common import bench, light_coro, need

need(hasattr(asyncio, "eager_task_factory"), "asyncio.eager_task_factory is new in Python 3.12")


async def work(n):
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    async with asyncio.TaskGroup() as tg:
        for _ in range(n):
            tg.create_task(light_coro())


bench(work)
