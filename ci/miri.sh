#!/usr/bin/env bash
# Runs the unit and integration tests of the crates with unsafe code (and their
# neighbours) under Miri, with strict provenance and the leak checker on.
# Tests that need real threads sleeping or real I/O are skipped with cfg(miri).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^miri'; then
    rustup component add --toolchain nightly miri rust-src
fi

export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
crates=(asyncio-core asyncio-structured asyncio-factory asyncio-sync)
args=()
for c in "${crates[@]}"; do args+=(-p "$c"); done
cargo +nightly miri setup
# Doc tests are left out: they repeat the integration tests and Miri runs them slowly.
cargo +nightly miri test "${args[@]}" --lib --tests "$@"
