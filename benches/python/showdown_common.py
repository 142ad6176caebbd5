"""Shared by the showdown's CPython programs (benches/python/*.py).

Each program states one scenario's workload as ``async def work(n)``, the same
shape as the Rust side in benches/src/, and calls ``bench(work, ops)``. This
module parses ``--n N [--uvloop]``, warms up at n // 10 and then times one run
at size n on one ``asyncio.Runner`` (on uvloop's loop with ``--uvloop``), and
prints one JSON line: ``{"ns": ..., "ops": ...}``. Interpreter start-up and
the warm-up are not timed. When this Python lacks a feature the scenario
needs, the program prints ``{"unavailable": "why"}`` instead and exits 0; the
showdown shows it as "unavailable on Python 3.x: why".
"""

import argparse
import asyncio
import json
import sys
import time


def unavailable(reason):
    """Reports that this interpreter cannot run the scenario, and exits."""
    print(json.dumps({"unavailable": reason}))
    sys.exit(0)


def need(present, reason):
    """Exits as unavailable unless ``present``."""
    if not present:
        unavailable(reason)


def _args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, required=True, help="the size of a run")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    return p.parse_args()


def _loop_factory(use_uvloop):
    need(hasattr(asyncio, "Runner"), "asyncio.Runner is new in Python 3.11")
    if not use_uvloop:
        return None
    try:
        import uvloop
    except ImportError:
        unavailable("uvloop does not import (python3 -m pip install uvloop)")
    return uvloop.new_event_loop


def _report(ns, ops):
    print(json.dumps({"ns": ns, "ops": ops}))


def bench(work, ops=lambda n: n):
    """Times ``work(n)`` on one Runner after a warm-up at n // 10."""
    args = _args()
    factory = _loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(work(max(args.n // 10, 1)))
        t0 = time.perf_counter_ns()
        runner.run(work(args.n))
        ns = time.perf_counter_ns() - t0
    _report(ns, ops(args.n))


def bench_loops(run, ops):
    """Times ``run(n, loop_factory)`` for workloads that make their own loops."""
    args = _args()
    factory = _loop_factory(args.uvloop)
    run(max(args.n // 10, 1), factory)
    t0 = time.perf_counter_ns()
    run(args.n, factory)
    ns = time.perf_counter_ns() - t0
    _report(ns, ops(args.n))


async def light_coro():
    """The tutorial's light_coro: a coroutine that does nothing."""


def serve_args(main):
    """Runs a server program's ``main()`` (``--uvloop`` picks the loop)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--serve", action="store_true", help="serve until stdin closes")
    p.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = p.parse_args()
    factory = _loop_factory(args.uvloop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())
