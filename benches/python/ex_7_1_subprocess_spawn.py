"""ex_7_1: /bin/true children started at once, then each waited for
(n / 1,000 children, between 10 and 1,000)."""

import asyncio

from showdown_common import bench


def ops(n):
    return min(max(n // 1000, 10), 1000)


async def work(n):
    children = [await asyncio.create_subprocess_exec("/bin/true") for _ in range(ops(n))]
    for c in children:
        assert await c.wait() == 0


bench(work, ops)
