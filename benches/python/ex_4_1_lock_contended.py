"""ex_4_1: 1,000 tasks taking one Lock ceil(n / 1,000) times each, yielding
while they hold it."""

import asyncio

from showdown_common import bench

TASKS = 1000


def times(n):
    return -(-n // TASKS)


async def work(n):
    lock = asyncio.Lock()
    count = 0

    async def one():
        nonlocal count
        for _ in range(times(n)):
            async with lock:
                count += 1
                await asyncio.sleep(0)

    await asyncio.gather(*[one() for _ in range(TASKS)])
    assert count == TASKS * times(n)


bench(work, lambda n: TASKS * times(n))
