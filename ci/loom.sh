#!/usr/bin/env bash
# Runs the loom models of asyncio-core's cross-thread paths (src/loom_models.rs):
# the injector against the loop going to sleep and against close(), foreign
# wakes against completion and cancellation, a waker dropped against
# completion, the blocking pool's hand-back (also of a cancelled task), and
# run_coroutine_threadsafe's completion and cancel; and of asyncio-sync's
# Channel (src/loom_models.rs there): a put or get racing a waiter going to
# sleep, the last task_done racing join, shutdown racing waiting getters and
# putters, and a woken waiter dropped before it runs. Under `--cfg loom` the
# atomics, mutexes, condition variables, pool threads and thread-locals these
# paths use become loom's. Each model prints how many interleavings loom ran.
#
# The preemption bound defaults to 5 (about 16 s after the build on a 2-core
# machine); `.ci/run` uses 2. Set LOOM_MAX_PREEMPTIONS to change it (set it
# empty for loom's unbounded search, which can take long).
# Extra arguments filter the models by name. Runs on the pinned stable
# toolchain: no nightly needed. Builds into $CARGO_TARGET_DIR/loom (target/
# by default), apart from the normal build, since --cfg loom changes every
# artifact.
set -euo pipefail
cd "$(dirname "$0")/.."
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS-5}"
if [ -z "$LOOM_MAX_PREEMPTIONS" ]; then unset LOOM_MAX_PREEMPTIONS; fi
RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom" \
    cargo test -p asyncio-core -p asyncio-sync --lib --release -- loom_models --nocapture --test-threads=1 "$@"
