#!/usr/bin/env bash
# Runs the heavy tests kept out of `cargo test` with #[ignore]: millions of
# tasks, million-deep eager chains, random cancels and panics, 10,000 loopback
# connections (asyncio-streams: the clients run in a child process). One test at a
# time: the stress binaries count their process's memory.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release -- --ignored --test-threads=1 "$@"
