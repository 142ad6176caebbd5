"""ex_3_1: n / 10 trivial callbacks sent to the loop from another thread."""

import asyncio
import threading

from showdown_common import bench


def ops(n):
    return max(n // 10, 1)


async def work(n):
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def tick():
        nonlocal count
        count += 1

    def sender():
        for _ in range(ops(n)):
            loop.call_soon_threadsafe(tick)
        # FIFO: this runs after all of the above.
        loop.call_soon_threadsafe(done.set_result, None)

    t = threading.Thread(target=sender)
    t.start()
    await done
    t.join()
    assert count == ops(n)


bench(work, ops)
