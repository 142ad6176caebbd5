#!/usr/bin/env bash
# Runs the test suites of asyncio-core, asyncio-sync and asyncio-structured
# under AddressSanitizer (with LeakSanitizer: a task cell, a waker or a queued
# item still allocated when a test binary exits fails it) and under
# ThreadSanitizer. Needs nightly with rust-src (installed here if missing) for
# -Zbuild-std: the standard library is rebuilt instrumented, so TSan sees its
# atomics and ASan its allocations.
#
# Usage: ci/sanitizers.sh [address|thread]...   (default: both)
# Extra cargo test arguments go after `--`.
#
# Each sanitizer builds into its own target dir ($CARGO_TARGET_DIR/asan and
# /tsan, target/ by default): the flags invalidate each other's artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
    rustup component add --toolchain nightly rust-src
fi

sanitizers=()
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --) shift; extra=("$@"); break ;;
        *) sanitizers+=("$1"); shift ;;
    esac
done
[ ${#sanitizers[@]} -eq 0 ] && sanitizers=(address thread)

base="${CARGO_TARGET_DIR:-target}"
for san in "${sanitizers[@]}"; do
    case "$san" in
        address) dir="$base/asan" ;;
        thread) dir="$base/tsan" ;;
        *) echo "unknown sanitizer: $san (address or thread)" >&2; exit 2 ;;
    esac
    echo "== $san sanitizer =="
    # ASYNCIO_SANITIZER names the sanitizer to a test that cannot run under
    # it (none today: see docs/testing.md); such a test returns early when it
    # is set and says why.
    RUSTFLAGS="-Zsanitizer=$san ${RUSTFLAGS:-}" \
    RUSTDOCFLAGS="-Zsanitizer=$san ${RUSTDOCFLAGS:-}" \
    CARGO_TARGET_DIR="$dir" \
    ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
    TSAN_OPTIONS="halt_on_error=1:${TSAN_OPTIONS:-}" \
    ASYNCIO_SANITIZER="$san" \
        cargo +nightly test -Zbuild-std --target "$target" \
            -p asyncio-core -p asyncio-sync -p asyncio-structured \
            --lib --tests "${extra[@]}"
done
