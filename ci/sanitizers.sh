#!/usr/bin/env bash
# Runs the test suites of asyncio-core, asyncio-sync, asyncio-structured,
# asyncio-streams and asyncio-pool under AddressSanitizer (with
# LeakSanitizer: a task cell, a waker or a queued item still allocated when a
# test binary exits fails it) and under ThreadSanitizer, then the
# cross-thread tests under ThreadSanitizer again, several times over: a race
# that shows once in six runs must not pass by luck. Needs nightly with
# rust-src (installed here if missing) for -Zbuild-std: the standard library
# is rebuilt instrumented, so TSan sees its atomics and ASan its allocations.
#
# Usage: ci/sanitizers.sh [address|thread|cross-thread]...   (default: all three)
#   cross-thread   only the cross-thread tests under TSan, repeated
#                  (ASYNCIO_TSAN_REPEAT times, 5 by default); `.ci/run` runs this.
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
[ ${#sanitizers[@]} -eq 0 ] && sanitizers=(address thread cross-thread)

crates=(-p asyncio-core -p asyncio-sync -p asyncio-structured -p asyncio-streams -p asyncio-pool)
# The tests whose threads race the loop: wakes, channels, to_thread,
# call_soon_threadsafe, run_coroutine_threadsafe and the pool's hand-off.
cross_thread=(-p asyncio-core --test threads --test waker --test leaks
              --test lazy_poller --test threadsafe_calls
              -p asyncio-sync --test channel
              -p asyncio-pool --test handoff --test run)
repeat="${ASYNCIO_TSAN_REPEAT:-5}"

base="${CARGO_TARGET_DIR:-target}"
run_under() {
    local san="$1"; shift
    local dir
    case "$san" in
        address) dir="$base/asan" ;;
        thread) dir="$base/tsan" ;;
    esac
    # ASYNCIO_SANITIZER names the sanitizer to a test that cannot run under
    # it (see docs/testing.md); such a test returns early when it is set and
    # says why.
    RUSTFLAGS="-Zsanitizer=$san ${RUSTFLAGS:-}" \
    RUSTDOCFLAGS="-Zsanitizer=$san ${RUSTDOCFLAGS:-}" \
    CARGO_TARGET_DIR="$dir" \
    ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" \
    TSAN_OPTIONS="halt_on_error=1:${TSAN_OPTIONS:-}" \
    ASYNCIO_SANITIZER="$san" \
        cargo +nightly test -Zbuild-std --target "$target" "$@"
}

for san in "${sanitizers[@]}"; do
    case "$san" in
        address|thread)
            echo "== $san sanitizer =="
            run_under "$san" "${crates[@]}" --lib --tests "${extra[@]}"
            ;;
        cross-thread)
            for i in $(seq 1 "$repeat"); do
                echo "== thread sanitizer, cross-thread tests, run $i of $repeat =="
                run_under thread "${cross_thread[@]}" "${extra[@]}"
            done
            ;;
        *) echo "unknown sanitizer: $san (address, thread or cross-thread)" >&2; exit 2 ;;
    esac
done
