"""ex_2_4: n tasks each sleeping a pseudo-random 0-100 ms (the same sequence
as benches/src/timers.rs), all awaited."""

import asyncio

from showdown_common import bench

MASK = (1 << 64) - 1


def delay(i):
    x = (i * 6_364_136_223_846_793_005 + 1_442_695_040_888_963_407) & MASK
    return ((x >> 33) % 100_001) / 1e6


async def work(n):
    tasks = [asyncio.create_task(asyncio.sleep(delay(i))) for i in range(n)]
    for t in tasks:
        await t


bench(work)
