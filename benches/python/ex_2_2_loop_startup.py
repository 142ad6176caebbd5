"""ex_2_2: n / 100 whole runs of an empty coroutine, each on a new loop
(what asyncio.run does: create the loop, run, close)."""

import asyncio

from showdown_common import bench_loops


def ops(n):
    return max(n // 100, 1)


async def empty():
    pass


def run(n, loop_factory):
    for _ in range(ops(n)):
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(empty())


bench_loops(run, ops)
