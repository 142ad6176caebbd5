#!/usr/bin/env bash
# Load generators no one here wrote, against the HTTP examples and their tokio
# twins: wrk (HTTP/1.1, 50 keep-alive connections) and h2load (HTTP/2 h2c,
# 10 connections x 10 concurrent streams), each for ASYNCIO_LOAD_SECS seconds
# (10 by default), ASYNCIO_LOAD_ROUNDS rounds (3), the two runtimes taking
# turns within a round. Prints each measurement, then the median requests per
# second of each row and asyncio-rs's ratio to tokio in this run.
#
#   hello    ex_5_4_http_server (asyncio::http::Http)        vs  eco_server tokio hello (hyper-util auto builder)
#   axum     eco_server asyncio axum (the same Router)        vs  eco_server tokio axum (axum::serve)
#
# Installs wrk and nghttp2-client (h2load) with apt-get when missing.
# Both servers are on one thread; the load generator gets its own (-t1).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${ASYNCIO_LOAD_SECS:-10}
rounds=${ASYNCIO_LOAD_ROUNDS:-3}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --release -q -p asyncio --example ex_5_4_http_server
cargo build --release -q -p asyncio-bench --bin eco_server
bin=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"name":"asyncio","n":41}'
wrk.headers["Content-Type"] = "application/json"
LUA

# start NAME PORT COMMAND...: runs a server in the background, waits for it.
start() {
    local port=$1
    shift
    "$@" >"$work/server.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    echo "load: the server on port $port did not start" >&2
    cat "$work/server.log" >&2
    return 1
}
stop_all() {
    for p in "${pids[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    pids=()
}

wrk_rps() { # URL [wrk args...]
    local url=$1
    shift
    wrk -t1 -c50 -d"${secs}s" "$@" "$url" | awk '/^Requests\/sec:/ {print $2}'
}
h2_rps() { # URL
    h2load -c10 -m10 -D "$secs" "$1" 2>/dev/null | awk '/^finished in/ {gsub(",", "", $4); print $4}'
}

results="$work/results"
: >"$results"
record() { # ROW RUNTIME RPS
    printf '%-14s %-8s %12s req/s\n' "$1" "$2" "$3"
    echo "$1 $2 $3" >>"$results"
}

for round in $(seq "$rounds"); do
    echo "--- round $round of $rounds (${secs} s each)"
    start 8080 "$bin/examples/ex_5_4_http_server"
    record hello_http1 asyncio "$(wrk_rps http://127.0.0.1:8080/)"
    record hello_h2c asyncio "$(h2_rps http://127.0.0.1:8080/)"
    stop_all
    start 8090 "$bin/eco_server" tokio hello 8090
    record hello_http1 tokio "$(wrk_rps http://127.0.0.1:8090/)"
    record hello_h2c tokio "$(h2_rps http://127.0.0.1:8090/)"
    stop_all
    start 8091 "$bin/eco_server" asyncio axum 8091
    record axum_json asyncio "$(wrk_rps http://127.0.0.1:8091/greet -s "$work/post.lua")"
    stop_all
    start 8092 "$bin/eco_server" tokio axum 8092
    record axum_json tokio "$(wrk_rps http://127.0.0.1:8092/greet -s "$work/post.lua")"
    stop_all
done

echo "--- medians over $rounds rounds (higher is better)"
for row in hello_http1 hello_h2c axum_json; do
    a=$(awk -v r="$row" '$1 == r && $2 == "asyncio" {print $3}' "$results" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    t=$(awk -v r="$row" '$1 == r && $2 == "tokio" {print $3}' "$results" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
    awk -v r="$row" -v a="$a" -v t="$t" 'BEGIN {printf "%-14s asyncio-rs %10.0f req/s   tokio %10.0f req/s   asyncio-rs / tokio = %.2fx\n", r, a, t, a / t}'
done
