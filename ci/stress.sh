#!/usr/bin/env bash
# Runs the heavy tests kept out of `cargo test` with #[ignore]: millions of
# tasks, million-deep eager chains, random cancels and panics.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release -- --ignored "$@"
