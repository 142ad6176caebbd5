#!/usr/bin/env bash
# Runs the heavy tests kept out of `cargo test` with #[ignore]: millions of
# tasks, million-deep eager chains, random cancels and panics, 10,000 loopback
# connections (asyncio-streams: the clients run in a child process), the soak
# (ten minutes of connection churn against one server; ASYNCIO_SOAK_SECS=60
# shortens it) and the backlog measurement (a burst of 1,000 connects at
# backlog 100 and 1024). One test at a time: the stress binaries count their
# process's memory and descriptors.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release -- --ignored --test-threads=1 "$@"
