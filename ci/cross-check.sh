#!/usr/bin/env bash
# Compile-checks the workspace (clippy with -D warnings, every target: lib,
# tests, examples, benches) for the Unix systems this machine cannot run:
# macOS on x86_64 and aarch64, and FreeBSD. Nothing is linked or run; what it
# catches is a Linux-only call (a libc item, a syscall, a /proc path in code)
# that lands without its `cfg` and fallback.
#
#   ci/cross-check.sh                       # the three targets (and the runtime's
#                                           # fd-free crates for x86_64-pc-windows-gnu)
#   ci/cross-check.sh x86_64-unknown-freebsd
#
# Needs: rustup (adds the targets' standard libraries) and, for the build
# scripts that compile C (criterion's `alloca`, ring for the `tls` feature),
# clang and llvm-ar: Debian's gcc cannot target Mach-O. There are no macOS or
# FreeBSD system headers here, so C is compiled freestanding
# (`-ffreestanding`: clang's own stddef.h, stdint.h...) with declaration-only
# stand-ins for the few libc headers ring includes (ci/cross-headers: string.h,
# stdlib.h, assert.h, TargetConditionals.h); a check never links that C. A
# crate whose C needs more than that (aws-lc-sys) cannot build this way: for
# the packages whose graph holds one, the script checks their libraries with
# default features off, and says so.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    targets=(x86_64-apple-darwin aarch64-apple-darwin x86_64-unknown-freebsd)
fi

# Crates whose build script needs the target's C headers (a space-separated
# list in CROSS_CHECK_NEEDS_HEADERS replaces it, to try the reduced path).
read -r -a needs_target_headers <<<"${CROSS_CHECK_NEEDS_HEADERS:-aws-lc-sys}"

rustup target add "${targets[@]}" >/dev/null 2>&1 || rustup target add "${targets[@]}"
if ! command -v clang >/dev/null || ! command -v llvm-ar >/dev/null; then
    if command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm) >/dev/null
    fi
fi
command -v clang >/dev/null || { echo "cross-check: clang is needed (apt-get install clang llvm)" >&2; exit 1; }

members=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(" ".join(p["name"] for p in json.load(sys.stdin)["packages"]))')

for t in "${targets[@]}"; do
    var=${t//-/_}
    export "CC_$var=clang" "AR_$var=llvm-ar" "CFLAGS_$var=-ffreestanding -isystem $PWD/ci/cross-headers"
    full=()
    reduced=()
    for p in $members; do
        blocked=""
        for c in "${needs_target_headers[@]}"; do
            if cargo tree -q -p "$p" --target "$t" -e normal,build,dev -i "$c" 2>/dev/null | grep -q .; then
                blocked=$c
            fi
        done
        if [ -z "$blocked" ]; then
            full+=(-p "$p")
        else
            reduced+=("$p:$blocked")
        fi
    done
    echo "cross-check $t: clippy --all-targets on $((${#full[@]} / 2)) packages"
    cargo clippy --quiet --target "$t" --all-targets "${full[@]}" -- -D warnings
    for entry in "${reduced[@]+"${reduced[@]}"}"; do
        p=${entry%%:*}
        c=${entry#*:}
        if cargo tree -q -p "$p" --target "$t" -e normal,build --no-default-features -i "$c" 2>/dev/null | grep -q .; then
            echo "cross-check $t: $p needs $c even without default features; not checked here" >&2
            continue
        fi
        echo "cross-check $t: $p pulls in $c (C needing $t's headers): its library and binaries, default features off"
        kinds=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["packages"] if p["name"] == sys.argv[1]][0]
k = {k for t in p["targets"] for k in t["kind"]}
print(" ".join(f for f, ks in (("--lib", {"lib", "proc-macro"}), ("--bins", {"bin"})) if k & ks))' "$p")
        cargo clippy --quiet --target "$t" -p "$p" $kinds --no-default-features -- -D warnings
    done
done
# Windows is out of scope for now, but the door stays open: the crates that
# need no file descriptor (the loop, tasks, timers, factories, TaskGroup and
# the primitives) build there, with what is Unix-only (add_reader and
# IoRegistration, signal handlers) behind cfg(unix). The streams and the
# pool are Unix-only and are not checked.
if [ "$#" = 0 ]; then
    rustup target add x86_64-pc-windows-gnu >/dev/null 2>&1 || rustup target add x86_64-pc-windows-gnu
    windows=(asyncio-sync asyncio-core asyncio-factory asyncio-structured asyncio-macros)
    echo "cross-check x86_64-pc-windows-gnu: the libraries of ${windows[*]}"
    cargo clippy --quiet --target x86_64-pc-windows-gnu "${windows[@]/#/--package=}" --lib -- -D warnings
fi
echo "cross-check: ${targets[*]} clean"
