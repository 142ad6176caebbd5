"""ex_4_4: 1,000 tasks meeting at a Barrier(1000), ceil(n / 10,000) rounds."""

import asyncio

from showdown_common import bench, need

PARTIES = 1000

need(hasattr(asyncio, "Barrier"), "asyncio.Barrier is new in Python 3.11")


def rounds(n):
    return -(-n // 10_000)


async def work(n):
    barrier = asyncio.Barrier(PARTIES)

    async def party():
        for _ in range(rounds(n)):
            await barrier.wait()

    async with asyncio.TaskGroup() as tg:
        for _ in range(PARTIES):
            tg.create_task(party())


bench(work, lambda n: PARTIES * rounds(n))
