#!/usr/bin/env bash
# Fails when asyncio-core calls user code outside its gate (src/gate.rs): a
# `catch_unwind`, or a waker's `wake`/`wake_by_ref`, anywhere else in the
# crate's source. A line that is not a call into user code (the loop's own
# notifier, the waker of whoever polls a future, from inside that poll) says
# so with a `gate-exempt:` comment on it or on the line above.
# See docs/testing.md ("The gate and the fault plan").
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
while IFS= read -r hit; do
    file="${hit%%:*}"
    rest="${hit#*:}"
    line="${rest%%:*}"
    text="${rest#*:}"
    # Doc comments and comments may name the functions.
    case "$(echo "$text" | sed 's/^[[:space:]]*//')" in
        //*) continue ;;
    esac
    if echo "$text" | grep -q 'gate-exempt:'; then continue; fi
    prev=$((line - 1))
    if [ "$prev" -ge 1 ] && sed -n "${prev}p" "$file" | grep -q 'gate-exempt:'; then
        continue
    fi
    echo "user code called outside the gate: $file:$line:$text" >&2
    status=1
done < <(grep -rnE 'catch_unwind|\.wake\(\)|\.wake_by_ref\(\)' crates/asyncio-core/src \
    --include='*.rs' | grep -v '^crates/asyncio-core/src/gate.rs:' \
    | grep -v '^crates/asyncio-core/src/loom_models.rs:' || true)

if [ "$status" = 0 ]; then
    echo "gate-check: every call into user code in asyncio-core goes through src/gate.rs"
fi
exit "$status"
