"""ex_6_4 / ex_5_1: n items from a producer to a consumer through a
Queue(maxsize=128), ended by Queue.shutdown()."""

import asyncio

from showdown_common import bench, need

need(hasattr(asyncio.Queue, "shutdown"), "Queue.shutdown is new in Python 3.13")


async def work(n):
    q = asyncio.Queue(128)

    async def producer():
        for i in range(n):
            await q.put(i)
        q.shutdown()

    p = asyncio.create_task(producer())
    total = 0
    try:
        while True:
            total += await q.get()
    except asyncio.QueueShutDown:
        pass
    await p
    assert total == n * (n - 1) // 2


bench(work)
