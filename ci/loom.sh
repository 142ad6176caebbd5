#!/usr/bin/env bash
# Runs the loom models of asyncio-core's cross-thread paths (src/loom_models.rs):
# the injector against the loop going to sleep, and a foreign wake against a
# cancellation. The atomics of `Shared` and of the task header become loom's.
# Extra arguments filter the models by name.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}" \
    cargo test -p asyncio-core --lib --release -- loom_models "$@"
